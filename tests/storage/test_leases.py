"""Reservation leases: ``renew`` pushes the expiry of exactly the given reservations, so the sweep
gives back only the others (a dead request's), with the balances right; the heartbeat renews in
batches and keeps going after a failure."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import text

from routstr.billing.leases import LeaseRenewer
from routstr.billing.pipeline import Pipeline
from routstr.storage import accounts, ledger_ops
from routstr.storage.db import Database
from tests.storage.conftest import funded_key

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = 1_000_000  # reservations taken at this time (ms) ...
TTL = 1_000  # ... expire 1 s later unless renewed


async def reserve(db: Database, key_id: int, amount: int, ref: str) -> None:
    assert await db.ledger.run(ledger_ops.reserve, key_id, amount, ref, "m", T0, TTL) is None


async def expiries(db: Database) -> dict[str, int]:
    async with db.read() as conn:
        rows = (await conn.execute(text("SELECT request_id, expires_at FROM reservations"))).all()
    return {str(r[0]): int(r[1]) for r in rows}


async def books(db: Database, key_id: int) -> tuple[int, int]:
    """(balance, reserved) of the key, after checking that its ledger adds up to them."""
    async with db.read() as conn:
        row = await accounts.key_by_id(conn, key_id)
        s = await accounts.ledger_sums(conn, key_id)
    assert row is not None
    credit, held, back, charged, refunded = (
        s.get(k, 0) for k in ("credit", "reserve", "release", "charge", "refund")
    )
    assert credit - held + back - refunded == row.balance_msat
    assert held - back - charged == row.reserved_msat
    return row.balance_msat, row.reserved_msat


async def test_renew_pushes_exactly_the_given_reservations(db: Database) -> None:
    key_id = await funded_key(db, 10_000)
    for ref in ("a", "b", "c", "d", "e"):
        await reserve(db, key_id, 1_000, ref)
    # three refs: padded to four placeholders by repeating the last; an unknown ref matches nothing
    assert await db.ledger.run(ledger_ops.renew, ["a", "c", "gone"], T0 + 60_000) == 2
    assert await expiries(db) == {
        "a": T0 + 60_000, "b": T0 + TTL, "c": T0 + 60_000, "d": T0 + TTL, "e": T0 + TTL,
    }  # fmt: skip
    assert await db.ledger.run(ledger_ops.renew, [], T0 + 90_000) == 0
    assert await db.ledger.run(ledger_ops.renew, ["e"], T0 + 90_000) == 1
    assert (await expiries(db))["e"] == T0 + 90_000
    assert await books(db, key_id) == (5_000, 5_000)  # renewal moves no money


async def test_renew_refuses_more_than_one_statement_can_bind(db: Database) -> None:
    refs = [f"r{i}" for i in range(ledger_ops.RENEW_MAX + 1)]
    with pytest.raises(ValueError):
        await db.ledger.run(ledger_ops.renew, refs, T0)
    assert await db.ledger.run(ledger_ops.renew, refs[:-1], T0) == 0  # the most: one statement


async def test_the_sweep_releases_only_the_reservations_nobody_renewed(db: Database) -> None:
    alive, dead = await funded_key(db, 10_000), await funded_key(db, 4_000)
    await reserve(db, alive, 2_000, "streaming")
    await reserve(db, alive, 3_000, "crashed-1")
    await reserve(db, dead, 1_500, "crashed-2")
    assert await db.ledger.run(ledger_ops.renew, ["streaming"], T0 + 10 * TTL) == 1

    assert await db.ledger.run(ledger_ops.release_expired, T0 + 5 * TTL) == 2
    assert set(await expiries(db)) == {"streaming"}
    assert await books(db, alive) == (8_000, 2_000)  # the crashed request's 3,000 came back
    assert await books(db, dead) == (4_000, 0)

    # the renewed request settles normally: charged its cost, the rest released
    s = await db.ledger.run(ledger_ops.settle, alive, "streaming", 2_000, 1_200, "m", 10, 20, T0 + 6 * TTL)
    assert (s.charge, s.release, s.unpaid) == (1_200, 800, 0)
    assert await books(db, alive) == (8_800, 0)
    # once its lease is past too, nothing is left to sweep
    assert await db.ledger.run(ledger_ops.release_expired, T0 + 20 * TTL) == 0


def fake_pipeline(db: Any, ttl_ms: int, live: set[str]) -> Pipeline:
    """What the renewer reads of a pipeline: its database, its live refs and its TTL."""
    return cast(Pipeline, SimpleNamespace(db=db, live=live, reservation_ttl_ms=ttl_ms))


async def test_the_heartbeat_renews_every_live_reservation_in_batches(db: Database) -> None:
    key_id = await funded_key(db, 20_000)
    refs = [f"live-{i}" for i in range(10)]
    for ref in [*refs, "settled"]:
        await reserve(db, key_id, 1_000, ref)
    renewer = LeaseRenewer(fake_pipeline(db, 60_000, set(refs)), batch=4)  # three statements
    before = accounts.now_ms()
    assert await renewer.renew() == 10
    got = await expiries(db)
    assert all(got[ref] >= before + 60_000 for ref in refs)
    assert got["settled"] == T0 + TTL  # not live: left to expire
    assert await db.ledger.run(ledger_ops.release_expired, before + 30_000) == 1
    assert await books(db, key_id) == (10_000, 10_000)


async def test_a_live_request_swept_before_renewal_is_reported(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    key_id = await funded_key(db, 5_000)
    await reserve(db, key_id, 1_000, "too-late")
    assert await db.ledger.run(ledger_ops.release_expired, T0 + 2 * TTL) == 1
    with caplog.at_level(logging.WARNING, logger="routstr.billing.leases"):
        assert await LeaseRenewer(fake_pipeline(db, 60_000, {"too-late"})).renew() == 0
    assert "lost their reservation to the sweep" in caplog.text


class FlakyLedger:
    """Fails its first call, then renews through the real ledger."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.calls = 0

    async def renew(self, request_ids: Any, expires_at: int) -> int:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("database unreachable")
        return await self.db.ledger.renew(request_ids, expires_at)


async def test_a_failed_renewal_is_logged_and_the_next_one_runs(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    key_id = await funded_key(db, 5_000)
    await reserve(db, key_id, 1_000, "r")
    ledger = FlakyLedger(db)
    renewer = LeaseRenewer(fake_pipeline(SimpleNamespace(ledger=ledger), 300, {"r"}))  # every 0.1 s
    with caplog.at_level(logging.INFO, logger="routstr.billing.leases"):
        task = asyncio.create_task(renewer.run())
        try:
            for _ in range(100):
                if ledger.calls >= 3:
                    break
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert ledger.calls >= 3
    assert "reservation lease renewal failed" in caplog.text
    assert "works again" in caplog.text
    assert (await expiries(db))["r"] > T0 + TTL
