"""The node secret lives outside the database it protects (issue 14): a file beside the data (or
SECRET_KEY), created once with mode 0600 even by concurrent starters, moved out of the database on
nodes that kept it there, and checked against the database so a wrong one refuses to start."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import stat
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from routstr.config import Settings
from routstr.core.keys import key_hash, new_sk_key
from routstr.core.sealed import seal, unseal
from routstr.devtools.nutshell import free_port
from routstr.storage import accounts
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from routstr.storage.node_secret import (
    CHECK_SETTING,
    LEGACY_SETTING,
    NodeSecretError,
    _create,
    load_node_secret,
    node_secret_path,
    secret_check,
)
from routstr.storage.schema import node_settings
from tests.conftest import fresh_database

MISMATCH = "is not the one this database was set up with"


@asynccontextmanager
async def set_up(backend: str, tmp_path: Path) -> AsyncIterator[tuple[Settings, Database]]:
    """A migrated, empty database and the settings of a node on it without SECRET_KEY: on SQLite
    the secret file is the default one (beside the database), on PostgreSQL a file in tmp_path."""
    os.makedirs(tmp_path, exist_ok=True)
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url)
        file = "" if backend == "sqlite" else str(tmp_path / "pg.secret")
        settings = Settings(providers=(), database_url=url, secret_key_file=file)
        db = Database(url)
        try:
            yield settings, db
        finally:
            await db.close()


async def settings_rows(db: Database) -> dict[str, str]:
    async with db.read() as conn:
        rows = (await conn.execute(select(node_settings.c.name, node_settings.c.value))).all()
    return {str(name): str(value) for name, value in rows}


async def put_setting(db: Database, name: str, value: str) -> None:
    async with db.write() as conn:
        await accounts.put_setting_if_absent(conn, name, value)


def secret_file(settings: Settings) -> Path:
    path = node_secret_path(settings)
    assert path is not None
    return path


async def test_first_start_writes_a_private_file_and_keeps_no_secret_in_the_database(
    backend: str, tmp_path: Path
):
    async with set_up(backend, tmp_path) as (settings, db):
        path = secret_file(settings)
        if backend == "sqlite":
            assert path == tmp_path / "node.secret"  # node.sqlite3 -> node.secret, beside it
        assert not path.exists()
        secret = await load_node_secret(db, settings)
        assert len(secret) == 64  # token_hex(32)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text().strip() == secret.decode()
        rows = await settings_rows(db)
        assert rows[CHECK_SETTING] == secret_check(secret.decode())
        assert LEGACY_SETTING not in rows
        for name, value in rows.items():
            assert secret.decode() not in name and secret.decode() not in value
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []

        again = Database(settings.database_url)  # a second start: another process, same file
        try:
            assert await load_node_secret(again, settings) == secret
        finally:
            await again.close()
        assert await settings_rows(db) == rows


async def test_a_legacy_database_secret_moves_into_the_file(backend: str, tmp_path: Path):
    legacy = "ab" * 32
    sk = new_sk_key()
    async with set_up(backend, tmp_path) as (settings, db):
        # what a node before the file did: a generated secret in the settings table, keys HMACed with it
        await put_setting(db, LEGACY_SETTING, legacy)
        async with db.write() as conn:
            key_id = await accounts.create_key(conn, key_hash(legacy.encode(), sk), "sk", "http://m", "sat")
        sealed = seal(legacy.encode(), "provider-api-key", "sk-upstream")

        secret = await load_node_secret(db, settings)
        assert secret == legacy.encode()  # the very bytes the old code returned
        assert secret_file(settings).read_text().strip() == legacy
        assert stat.S_IMODE(secret_file(settings).stat().st_mode) == 0o600
        rows = await settings_rows(db)
        assert LEGACY_SETTING not in rows
        assert all(legacy not in value for value in rows.values())
        async with db.read() as conn:
            row = await accounts.key_by_hash(conn, key_hash(secret, sk))
        assert row is not None and row.id == key_id  # the old key still opens its balance
        assert unseal(secret, "provider-api-key", sealed) == "sk-upstream"


async def test_a_crash_between_writing_the_file_and_deleting_the_setting_is_cleaned_up(
    backend: str, tmp_path: Path
):
    legacy = "cd" * 32
    async with set_up(backend, tmp_path) as (settings, db):
        await put_setting(db, LEGACY_SETTING, legacy)
        secret_file(settings).write_text(legacy + "\n")
        secret_file(settings).chmod(0o600)
        assert await load_node_secret(db, settings) == legacy.encode()
        rows = await settings_rows(db)
        assert LEGACY_SETTING not in rows and rows[CHECK_SETTING] == secret_check(legacy)


async def test_a_legacy_secret_that_differs_from_the_file_refuses_to_start(backend: str, tmp_path: Path):
    async with set_up(backend, tmp_path) as (settings, db):
        await put_setting(db, LEGACY_SETTING, "ef" * 32)
        secret_file(settings).write_text("another node's secret\n")
        with pytest.raises(NodeSecretError, match="differs from the file"):
            await load_node_secret(db, settings)
        assert (await settings_rows(db))[LEGACY_SETTING] == "ef" * 32  # nothing is lost
        assert secret_file(settings).read_text() == "another node's secret\n"


async def test_another_secret_than_the_database_was_set_up_with_refuses_to_start(
    backend: str, tmp_path: Path
):
    async with set_up(backend, tmp_path) as (settings, db):
        await load_node_secret(db, settings)
        check = (await settings_rows(db))[CHECK_SETTING]

        # a missing file (a new machine, the file lost): no new secret is made for this database
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        missing = dataclasses.replace(settings, secret_key_file=str(elsewhere / "routstr.secret"))
        with pytest.raises(NodeSecretError, match="is missing, and this database was set up") as e:
            await load_node_secret(db, missing)
        assert str(elsewhere / "routstr.secret") in str(e.value) and "SECRET_KEY" in str(e.value)
        assert "restore the file" in str(e.value).lower()
        assert list(elsewhere.iterdir()) == []

        # another node's file: refused, and left alone (it is not this node's to remove)
        other = tmp_path / "other.secret"
        other.write_text("11" * 32)
        other.chmod(0o600)
        with pytest.raises(NodeSecretError, match=MISMATCH):
            await load_node_secret(db, dataclasses.replace(settings, secret_key_file=str(other)))
        assert other.read_text() == "11" * 32

        # SECRET_KEY set to something else
        with pytest.raises(NodeSecretError, match=rf"\(SECRET_KEY\) {MISMATCH}"):
            await load_node_secret(db, dataclasses.replace(settings, secret_key="a guess"))
        assert (await settings_rows(db))[CHECK_SETTING] == check  # the check is never overwritten


async def test_secret_key_is_used_as_it_was_and_checked(backend: str, tmp_path: Path):
    async with set_up(backend, tmp_path) as (settings, db):
        configured = dataclasses.replace(settings, secret_key="operator's secret")
        assert await load_node_secret(db, configured) == b"operator's secret"
        assert not secret_file(settings).exists()  # no file when SECRET_KEY is set
        rows = await settings_rows(db)
        assert rows == {**rows, CHECK_SETTING: secret_check("operator's secret")}
        assert all("operator's secret" not in v for v in rows.values())
        assert await load_node_secret(db, configured) == b"operator's secret"
        # the same value moved into a file is the same node secret
        secret_file(settings).write_text("operator's secret\n")
        assert await load_node_secret(db, settings) == b"operator's secret"


async def test_a_file_others_can_read_is_tightened_to_0600(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    async with set_up(backend, tmp_path) as (settings, db):
        path = secret_file(settings)
        path.write_text("22" * 32 + "\n")
        path.chmod(0o644)
        with caplog.at_level(logging.WARNING, logger="routstr.storage.node_secret"):
            assert await load_node_secret(db, settings) == ("22" * 32).encode()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert any("0600" in r.getMessage() for r in caplog.records)
        assert all("22" * 32 not in r.getMessage() for r in caplog.records)  # never the secret


async def test_concurrent_first_starts_agree_on_one_secret(backend: str, tmp_path: Path):
    # in one event loop (two database handles, as two apps of one process would have)
    async with set_up(backend, tmp_path / "gather") as (settings, db):
        other = Database(settings.database_url)
        try:
            a, b = await asyncio.gather(load_node_secret(db, settings), load_node_secret(other, settings))
        finally:
            await other.close()
        assert a == b and secret_file(settings).read_text().strip() == a.decode()

    # in threads, each with its own event loop and database handle
    async with set_up(backend, tmp_path / "threads") as (settings, _db):
        results: list[bytes] = []

        async def start() -> bytes:
            own = Database(settings.database_url)
            try:
                return await load_node_secret(own, settings)
            finally:
                await own.close()

        def run() -> None:
            results.append(asyncio.run(start()))

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 4 and len(set(results)) == 1
        assert secret_file(settings).read_text().strip() == results[0].decode()

    # in processes (workers of one machine)
    async with set_up(backend, tmp_path / "processes") as (settings, _db):
        script = (
            "import asyncio, sys\n"
            "from routstr.config import Settings\n"
            "from routstr.storage.db import Database\n"
            "from routstr.storage.node_secret import load_node_secret\n"
            "async def main():\n"
            "    db = Database(sys.argv[1])\n"
            "    try:\n"
            "        s = Settings(providers=(), database_url=sys.argv[1], secret_key_file=sys.argv[2])\n"
            "        print((await load_node_secret(db, s)).decode())\n"
            "    finally:\n"
            "        await db.close()\n"
            "asyncio.run(main())\n"
        )
        file = str(secret_file(settings))
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, settings.database_url, file, stdout=subprocess.PIPE
            )
            for _ in range(3)
        ]
        outs = [(await p.communicate())[0].decode().strip() for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0]
        assert len(set(outs)) == 1 and outs[0] == secret_file(settings).read_text().strip()


def test_racing_creators_of_the_file_all_get_the_winners_value(tmp_path: Path):
    def create(path: Path, value: str, barrier: threading.Barrier, results: list[tuple[str, bool]]) -> None:
        barrier.wait()
        results.append(_create(path, value))

    for round_ in range(20):
        path = tmp_path / f"race{round_}.secret"
        barrier = threading.Barrier(6)
        results: list[tuple[str, bool]] = []
        threads = [
            threading.Thread(target=create, args=(path, f"value-{i}", barrier, results)) for i in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(created for _, created in results) == 1
        winner = next(value for value, created in results if created)
        assert {value for value, _ in results} == {winner} and path.read_text() == winner + "\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".secret")] == []  # no temp files left


async def test_an_in_memory_database_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings(providers=(), database_url="sqlite+aiosqlite://")
    assert node_secret_path(settings) is None
    memory = dataclasses.replace(settings, database_url="sqlite+aiosqlite:///:memory:")
    assert node_secret_path(memory) is None
    db = Database(settings.database_url)
    try:
        first = await load_node_secret(db, settings)
        assert len(first) == 64 and await load_node_secret(db, settings) == first  # for the process's life
    finally:
        await db.close()
    assert os.listdir(tmp_path) == []


def test_where_the_secret_file_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    base = Settings(providers=())
    assert node_secret_path(base) == tmp_path / "routstr.secret"  # sqlite:///routstr.sqlite3
    on_file = dataclasses.replace(base, database_url=f"sqlite+aiosqlite:///{tmp_path}/data/node.db")
    assert node_secret_path(on_file) == tmp_path / "data" / "node.secret"
    pg = dataclasses.replace(base, database_url="postgresql+asyncpg://u@db.internal/routstr")
    assert node_secret_path(pg) == tmp_path / "routstr.secret"  # the working directory
    chosen = dataclasses.replace(pg, secret_key_file="/run/secrets/routstr")
    assert node_secret_path(chosen) == Path("/run/secrets/routstr")


def _routstr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "routstr", *args, "--env-file", ""]
    full = {**os.environ, **env}
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=60)


async def test_serve_with_the_wrong_secret_exits_with_the_message(backend: str, tmp_path: Path):
    async with set_up(backend, tmp_path) as (settings, db):
        await load_node_secret(db, dataclasses.replace(settings, secret_key="the right one"))
        env = {
            "DATABASE_URL": settings.database_url,
            "SECRET_KEY": "the wrong one",
            "CASHU_MINTS": "http://127.0.0.1:1",
            "UPSTREAM_BASE_URL": "http://127.0.0.1:1/v1",
            "PORT": str(free_port()),
        }
        for args in (("serve",), ("serve", "--workers", "2"), ("admin-token", "list")):
            done = await asyncio.to_thread(_routstr, env, *args)
            assert done.returncode == 2, (args, done.stdout, done.stderr)
            assert MISMATCH in done.stderr and "configuration error" in done.stderr
            assert "Traceback" not in done.stderr and "the wrong one" not in done.stderr
        # without SECRET_KEY and without the file: refused, and no file is made
        del env["SECRET_KEY"]
        env["SECRET_KEY_FILE"] = str(secret_file(settings))
        done = await asyncio.to_thread(_routstr, env, "serve")
        assert done.returncode == 2 and "is missing, and this database was set up" in done.stderr
        assert str(secret_file(settings)) in done.stderr and "Traceback" not in done.stderr
        assert not secret_file(settings).exists()
        # a file with another secret: refused, the file left as it was
        secret_file(settings).write_text("another node's secret\n")
        done = await asyncio.to_thread(_routstr, env, "serve")
        assert done.returncode == 2 and MISMATCH in done.stderr and "another node" not in done.stderr
        assert secret_file(settings).read_text() == "another node's secret\n"


async def test_a_file_made_while_another_secret_set_the_database_up_is_removed(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The race the check alone catches: another node (SECRET_KEY, another machine) sets the
    database up between this start's look at it and its new file."""
    from routstr.storage import node_secret

    async with set_up(backend, tmp_path) as (settings, db):
        real_from_file = node_secret._from_file

        async def from_file_while_another_sets_up(db: Database, path: Path) -> tuple[str, bool, bool]:
            made = await real_from_file(db, path)
            await put_setting(db, CHECK_SETTING, secret_check("another node's secret"))
            return made

        monkeypatch.setattr(node_secret, "_from_file", from_file_while_another_sets_up)
        with pytest.raises(NodeSecretError, match=rf"just created\) {MISMATCH}"):
            await load_node_secret(db, settings)
        assert not secret_file(settings).exists()
