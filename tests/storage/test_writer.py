"""How each backend's hot ledger runs its calls: SQLite's group commit keeps each call all-or-nothing
and goes inline when the node is quiet; PostgreSQL's common case is one statement composed from the
portable SQL. What the operations do is in ``test_hot_ledger_behaviour.py``, run on both."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from routstr.core.ledger import Settlement
from routstr.storage import accounts, ledger_ops, pg_writer
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from routstr.storage.pg_writer import PgLedger
from routstr.storage.writer import SqliteLedger, SqliteWriter
from tests.conftest import fresh_database
from tests.storage.conftest import funded_key

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_failing_call_does_not_undo_its_neighbours(db: Database):
    key_id = await funded_key(db, 5_000)

    def boom(x: ledger_ops.Exec, key: int) -> None:
        x.run(ledger_ops.RESERVE, {"amount": 1_000, "key_id": key})  # written, then undone by the error
        raise RuntimeError("fails after writing")

    calls = [
        db.ledger.run(ledger_ops.reserve, key_id, 1_000, "a", "m", accounts.now_ms(), 60_000),
        db.ledger.run(boom, key_id),
        db.ledger.run(ledger_ops.reserve, key_id, 1_000, "b", "m", accounts.now_ms(), 60_000),
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], RuntimeError)
    async with db.read() as conn:
        row = await accounts.key_by_id(conn, key_id)
    assert row is not None and row.balance_msat == 3_000 and row.reserved_msat == 2_000


async def test_sqlite_path_from_url():
    from routstr.storage.writer import sqlite_path

    assert sqlite_path("sqlite+aiosqlite:////abs/x.db") == "/abs/x.db"
    assert sqlite_path("sqlite+aiosqlite:///rel.db") == "rel.db"
    assert SqliteWriter("sqlite+aiosqlite:///rel.db").path == "rel.db"


async def sqlite_ledger(tmp_path: Path, name: str) -> tuple[Database, SqliteLedger]:
    url = f"sqlite+aiosqlite:///{tmp_path / name}"
    await upgrade(url)
    db = Database(url)
    assert isinstance(db.ledger, SqliteLedger)
    return db, db.ledger


async def test_quiet_calls_run_inline_and_fall_back_when_the_database_is_busy(tmp_path: Path):
    import sqlite3

    db, ledger = await sqlite_ledger(tmp_path, "q.sqlite3")
    try:
        key_id = await funded_key(db, 3_000)
        assert await ledger.reserve(key_id, 1_000, "q1", "m", accounts.now_ms(), 9) is None
        assert (
            await ledger.settle(key_id, "q1", 1_000, 0, "m", None, None, accounts.now_ms())
        ).release == 1_000
        assert ledger._thread is None  # nothing needed the thread
        blocker = sqlite3.connect(tmp_path / "q.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        call = asyncio.ensure_future(ledger.reserve(key_id, 1_000, "q2", "m", accounts.now_ms(), 9))
        await asyncio.sleep(0.2)
        assert not call.done() and ledger._thread is not None  # queued to the thread, which waits
        blocker.execute("ROLLBACK")
        assert await asyncio.wait_for(call, 5) is None
        blocker.close()
        async with db.read() as conn:
            row = await accounts.key_by_id(conn, key_id)
        assert row is not None and row.balance_msat == 2_000 and row.reserved_msat == 1_000
    finally:
        await db.close()


async def test_the_ledger_sees_for_itself_when_the_node_is_quiet(tmp_path: Path):
    """Inline only while no other request of this process is between reserve and settle: a second
    request's calls go to the thread (group commit) until the first has settled."""
    db, ledger = await sqlite_ledger(tmp_path, "o.sqlite3")
    try:
        key_id = await funded_key(db, 10_000)
        asked: list[bool] = []  # each call's ``inline``, as the ledger decided it
        real = ledger.run

        async def noting(op: object, *args: object, inline: bool = False) -> object:
            asked.append(inline)
            return await real(op, *args, inline=inline)  # type: ignore[arg-type]

        ledger.run = noting  # type: ignore[method-assign]
        now = accounts.now_ms()
        assert await ledger.reserve(key_id, 1_000, "a", "m", now, 60_000) is None  # alone: inline
        assert await ledger.reserve(key_id, 1_000, "b", "m", now, 60_000) is None  # "a" is open
        await ledger.settle(key_id, "a", 1_000, 100, "m", 1, 1, now)  # "b" is open
        await ledger.settle(key_id, "b", 1_000, 100, "m", 1, 1, now)  # alone again
        assert await ledger.reserve(key_id, 99_000, "c", "m", now, 60_000) == 9_800  # refused: not open
        assert await ledger.reserve(key_id, 1_000, "d", "m", now, 60_000) is None
        assert asked == [True, False, False, True, True, True]
        assert ledger._thread is not None
    finally:
        await db.close()


async def test_inline_commits_are_checkpointed_so_the_wal_does_not_grow(tmp_path: Path, monkeypatch):
    """At one request at a time every commit is inline (no autocheckpoint there): the writer thread
    must checkpoint the WAL every CHECKPOINT_EVERY commits, outside any transaction, so that the WAL
    file is reused from its start instead of growing with every commit."""
    from routstr.storage import writer as writer_mod

    monkeypatch.setattr(writer_mod, "CHECKPOINT_EVERY", 20)
    path = tmp_path / "c.sqlite3"
    db, ledger = await sqlite_ledger(tmp_path, "c.sqlite3")
    try:
        key_id = await funded_key(db, 10**9)
        wal = Path(f"{path}-wal")
        sizes = []
        for i in range(400):
            now = accounts.now_ms()
            assert await ledger.reserve(key_id, 2, f"w{i}", "m", now, 9) is None
            await ledger.settle(key_id, f"w{i}", 2, 1, "m", 1, 1, now)
            if i % 10 == 9:
                await asyncio.sleep(0.05)  # the checkpoint runs on the writer thread
                sizes.append(await asyncio.to_thread(os.path.getsize, wal))
        assert sizes[-1] <= 2 * sizes[1], sizes  # bounded by a few checkpoint intervals, not 800 commits
    finally:
        await db.close()


async def test_quiet_calls_stay_inline_while_the_thread_checkpoints(tmp_path: Path):
    """A checkpoint on the writer thread must not send the quiet calls behind it to the queue: they
    would wait for its fsyncs (that was the node's p99 at one request at a time)."""
    import threading

    db, ledger = await sqlite_ledger(tmp_path, "k.sqlite3")
    try:
        key_id = await funded_key(db, 10_000)
        ran_on: list[int] = []

        def reserve_noting_the_thread(x: object, *args: object) -> object:
            ran_on.append(threading.get_ident())
            return ledger_ops.reserve(x, *args)  # type: ignore[arg-type]

        ledger._checkpoint_soon()
        await asyncio.sleep(0)  # the checkpoint is handed to the thread
        assert ledger._thread is not None and ledger._pending == 0
        args = (key_id, 1_000, "during", "m", accounts.now_ms(), 9)
        assert await ledger.run(reserve_noting_the_thread, *args, inline=True) is None
        assert ran_on == [threading.get_ident()]  # inline, on the event loop's thread
    finally:
        await db.close()


@pytest.mark.parametrize("backend", ["postgres"])  # PostgreSQL's ledger only
async def test_the_common_reserve_and_settle_are_one_statement_on_postgresql(backend: str, tmp_path: Path):
    """The fast path must match its case (else every request would silently take the slow one), and
    its statements are ``ledger_ops``'s own texts, composed."""
    if not os.environ.get("TEST_POSTGRES_URL"):
        if os.environ.get("CI"):
            pytest.fail("CI is set but TEST_POSTGRES_URL is not: PostgreSQL's ledger goes untested")
        pytest.skip("set TEST_POSTGRES_URL to run PostgreSQL's ledger")
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url)
        db = Database(url)
        try:
            await _one_statement_each(db)
        finally:
            await db.close()


async def _one_statement_each(db: Database) -> None:
    assert isinstance(db.ledger, PgLedger)
    assert pg_writer.numbered(ledger_ops.RESERVE)[0] in pg_writer.RESERVE
    key_id = await funded_key(db, 5_000)
    now = accounts.now_ms()
    assert await db.ledger._reserve(key_id, 1_000, "one", "m", now, 60_000) is None
    s = await db.ledger._settle(key_id, "one", 1_000, 250, "m", 3, 4, now)
    assert isinstance(s, Settlement) and (s.charge, s.release) == (250, 750)
    again = await db.ledger._settle(key_id, "one", 1_000, 250, "m", 3, 4, now)
    assert not isinstance(again, Settlement)  # gone: the portable path decides (charges nothing)
    async with db.read() as conn:
        q = "SELECT kind, amount_msat FROM ledger WHERE request_id = 'one' ORDER BY id"
        assert [tuple(r) for r in (await conn.execute(text(q))).all()] == [
            ("reserve", 1_000), ("charge", 250), ("release", 750)
        ]  # fmt: skip


async def test_statements_are_numbered_for_asyncpg_from_the_named_text():
    sql, names = pg_writer.numbered("UPDATE t SET a = a - :amount WHERE id = :key_id AND a >= :amount")
    assert sql == "UPDATE t SET a = a - $1 WHERE id = $2 AND a >= $1" and names == ("amount", "key_id")
    assert pg_writer.rename("VALUES (:kind, :pt)", kind="'x'", pt="NULL") == "VALUES ('x', NULL)"
    assert pg_writer.insert_after("INSERT INTO t (a, b) VALUES (:a, :b)", "r", ":a > 0") == (
        "INSERT INTO t (a, b) SELECT :a, :b FROM r WHERE :a > 0"
    )
    with pytest.raises(ValueError):
        pg_writer.insert_after("UPDATE t SET a = 1", "r")
