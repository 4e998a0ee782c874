"""The hot-path writer: group commit keeps each call's all-or-nothing, and never overdraws."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from routstr.storage import accounts, ledger_ops
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from routstr.storage.writer import SqliteWriter
from tests.storage.conftest import funded_key

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_many_concurrent_reservations_never_overdraw(db: Database):
    key_id = await funded_key(db, 10_000)
    results = await asyncio.gather(
        *(
            db.ledger.run(ledger_ops.reserve, key_id, 1_000, f"r{i}", "m", accounts.now_ms(), 60_000)
            for i in range(50)
        )
    )
    assert results.count(None) == 10
    assert all(r is None or r < 1_000 for r in results)
    async with db.read() as conn:
        row = await accounts.key_by_id(conn, key_id)
        sums = await accounts.ledger_sums(conn, key_id)
    assert row is not None and row.balance_msat == 0 and row.reserved_msat == 10_000
    assert sums == {"credit": 10_000, "reserve": 10_000}


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


async def test_settle_after_the_sweeper_released_charges_only_what_is_free(db: Database):
    key_id = await funded_key(db, 5_000)
    assert await db.ledger.run(ledger_ops.reserve, key_id, 2_000, "late", "m", 0, 1) is None
    assert await db.ledger.run(ledger_ops.release_expired, accounts.now_ms()) >= 1
    s = await db.ledger.run(ledger_ops.settle, key_id, "late", 2_000, 7_000, "m", 1, 1, accounts.now_ms())
    assert (s.charge, s.unpaid) == (5_000, 2_000)
    async with db.read() as conn:
        row = await accounts.key_by_id(conn, key_id)
        sums = await accounts.ledger_sums(conn, key_id)
    assert row is not None and row.balance_msat == 0 and row.reserved_msat == 0
    assert sums["credit"] - sums["reserve"] + sums["release"] == 0
    assert sums["reserve"] - sums["release"] - sums["charge"] == 0


@pytest.mark.parametrize(
    ("cost", "charge", "release", "extra"),
    [(0, 0, 1_000, 0), (400, 400, 600, 0), (1_000, 1_000, 0, 0), (1_700, 1_700, 0, 700)],
)
async def test_settle_charges_the_cost_and_releases_the_rest(db: Database, cost, charge, release, extra):
    """Under, at and over the reservation (over: the portable path on PostgreSQL too)."""
    key_id = await funded_key(db, 5_000)
    assert (
        await db.ledger.run(ledger_ops.reserve, key_id, 1_000, "s1", "m", accounts.now_ms(), 60_000) is None
    )
    s = await db.ledger.run(ledger_ops.settle, key_id, "s1", 1_000, cost, "m", 10, 20, accounts.now_ms())
    assert (s.charge, s.release, s.extra, s.unpaid) == (charge, release, extra, 0)
    async with db.read() as conn:
        row = await accounts.key_by_id(conn, key_id)
        sums = await accounts.ledger_sums(conn, key_id)
        tokens = (
            await conn.execute(
                text(
                    "SELECT prompt_tokens, completion_tokens FROM ledger"
                    " WHERE kind = 'charge' AND key_id = :k"
                ),
                {"k": key_id},
            )
        ).all()
        held = (
            await conn.execute(text("SELECT count(*) FROM reservations WHERE request_id = 's1'"))
        ).scalar()
    assert row is not None
    assert (row.balance_msat, row.reserved_msat, row.total_spent_msat) == (5_000 - cost, 0, cost)
    assert row.total_requests == 1 and held == 0
    assert sums.get("charge", 0) == charge and sums.get("release", 0) == release
    assert sums["reserve"] == 1_000 + extra
    assert [tuple(t) for t in tokens] == ([(10, 20)] if charge else [])


async def test_a_settle_whose_caller_is_cancelled_still_completes(db: Database):
    key_id = await funded_key(db, 5_000)
    assert (
        await db.ledger.run(ledger_ops.reserve, key_id, 1_000, "c1", "m", accounts.now_ms(), 60_000) is None
    )
    call = asyncio.ensure_future(
        db.ledger.run(ledger_ops.settle, key_id, "c1", 1_000, 300, "m", 1, 1, accounts.now_ms())
    )
    await asyncio.sleep(0)  # submitted, then its caller goes away
    call.cancel()
    for _ in range(100):
        async with db.read() as conn:
            row = await accounts.key_by_id(conn, key_id)
        assert row is not None
        if row.total_requests == 1:
            break
        await asyncio.sleep(0.02)
    assert (row.balance_msat, row.reserved_msat, row.total_spent_msat) == (4_700, 0, 300)


async def test_sqlite_path_from_url():
    from routstr.storage.writer import sqlite_path

    assert sqlite_path("sqlite+aiosqlite:////abs/x.db") == "/abs/x.db"
    assert sqlite_path("sqlite+aiosqlite:///rel.db") == "rel.db"
    assert SqliteWriter("sqlite+aiosqlite:///rel.db").path == "rel.db"


async def test_quiet_calls_run_inline_and_fall_back_when_the_database_is_busy(tmp_path: Path):
    import sqlite3

    url = f"sqlite+aiosqlite:///{tmp_path / 'q.sqlite3'}"
    await upgrade(url)
    db = Database(url)
    try:
        key_id = await funded_key(db, 3_000)
        writer = db.ledger
        assert isinstance(writer, SqliteWriter)
        assert (
            await writer.run(ledger_ops.reserve, key_id, 1_000, "q1", "m", accounts.now_ms(), 9, quiet=True)
            is None
        )
        assert writer._thread is None  # nothing needed the thread
        blocker = sqlite3.connect(tmp_path / "q.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        call = asyncio.ensure_future(
            writer.run(ledger_ops.reserve, key_id, 1_000, "q2", "m", accounts.now_ms(), 9, quiet=True)
        )
        await asyncio.sleep(0.2)
        assert not call.done() and writer._thread is not None  # queued to the thread, which waits
        blocker.execute("ROLLBACK")
        assert await asyncio.wait_for(call, 5) is None
        blocker.close()
        async with db.read() as conn:
            row = await accounts.key_by_id(conn, key_id)
        assert row is not None and row.balance_msat == 1_000 and row.reserved_msat == 2_000
    finally:
        await db.close()


async def test_inline_commits_are_checkpointed_so_the_wal_does_not_grow(tmp_path: Path, monkeypatch):
    """At one request at a time every commit is inline (no autocheckpoint there): the writer thread
    must checkpoint the WAL every CHECKPOINT_EVERY commits, outside any transaction, so that the WAL
    file is reused from its start instead of growing with every commit."""
    from routstr.storage import writer as writer_mod

    monkeypatch.setattr(writer_mod, "CHECKPOINT_EVERY", 20)
    path = tmp_path / "c.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    db = Database(url)
    try:
        key_id = await funded_key(db, 10**9)
        writer = db.ledger
        assert isinstance(writer, SqliteWriter)
        wal = Path(f"{path}-wal")
        sizes = []
        for i in range(400):
            await writer.run(ledger_ops.reserve, key_id, 1, f"w{i}", "m", accounts.now_ms(), 9, quiet=True)
            if i % 20 == 19:
                await asyncio.sleep(0.05)  # the checkpoint runs on the writer thread
                sizes.append(await asyncio.to_thread(os.path.getsize, wal))
        assert sizes[-1] <= 2 * sizes[1], sizes  # bounded by a few checkpoint intervals, not 400 commits
    finally:
        await db.close()


async def test_quiet_calls_stay_inline_while_the_thread_checkpoints(tmp_path: Path):
    """A checkpoint on the writer thread must not send the quiet calls behind it to the queue: they
    would wait for its fsyncs (that was the node's p99 at one request at a time)."""
    import threading

    url = f"sqlite+aiosqlite:///{tmp_path / 'k.sqlite3'}"
    await upgrade(url)
    db = Database(url)
    try:
        key_id = await funded_key(db, 10_000)
        writer = db.ledger
        assert isinstance(writer, SqliteWriter)
        ran_on: list[int] = []

        def reserve_noting_the_thread(x: object, *args: object) -> object:
            ran_on.append(threading.get_ident())
            return ledger_ops.reserve(x, *args)  # type: ignore[arg-type]

        writer._checkpoint_soon()
        await asyncio.sleep(0)  # the checkpoint is handed to the thread
        assert writer._thread is not None and writer._pending == 0
        args = (key_id, 1_000, "during", "m", accounts.now_ms(), 9)
        assert await writer.run(reserve_noting_the_thread, *args, quiet=True) is None
        assert ran_on == [threading.get_ident()]  # inline, on the event loop's thread
    finally:
        await db.close()
