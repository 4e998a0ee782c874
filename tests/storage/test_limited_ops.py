"""Limited keys on the hot path (both databases): a child spends its parent's balance within its limit,
and the counters move in the same transactions as the money, whoever races."""

from __future__ import annotations

import asyncio
import os

import pytest

from routstr.core.budgets import Limits, LimitShort, next_reset
from routstr.core.errors import AuthenticationFailed
from routstr.storage import accounts, child_store, ledger_ops
from routstr.storage.books import ledger_mismatches
from routstr.storage.db import Database
from tests.storage.conftest import funded_key

pytestmark = pytest.mark.asyncio(loop_scope="session")
TTL = 60_000


async def child_of(db: Database, parent: int, limits: Limits, now: int | None = None) -> int:
    async with db.write() as conn:
        made = await child_store.create_children(
            conn, parent, [os.urandom(8).hex()], limits, 0, now or accounts.now_ms()
        )
        assert made.problem is None
        q = await conn.exec_driver_sql(f"SELECT max(key_id) FROM key_limits WHERE payer_id = {parent}")
        return int(q.scalar_one())


async def reserve(db: Database, key: int, amount: int, ref: str, now: int | None = None) -> int | None:
    return await db.ledger.run(ledger_ops.reserve, key, amount, ref, "m", now or accounts.now_ms(), TTL)


async def settle(db: Database, key: int, ref: str, held: int, cost: int, now: int | None = None) -> int:
    s = await db.ledger.run(ledger_ops.settle, key, ref, held, cost, "m", 1, 1, now or accounts.now_ms())
    return s.charge


async def state(db: Database, key: int) -> tuple[int, int, int]:
    """(spent, reserved, balance) of a limited key as its counters and balance info say."""
    async with db.read() as conn:
        fields = await child_store.limit_fields(conn, key, accounts.now_ms())
    assert fields is not None
    return fields["balance_limit_spent"], fields["reserved"], fields["balance"]


async def assert_books(db: Database) -> None:
    async with db.read() as conn:
        assert await ledger_mismatches(conn) == []
        assert await child_store.counter_mismatches(conn) == []


async def test_a_child_spends_its_parents_balance_within_its_limit(db: Database):
    parent = await funded_key(db, 10_000)
    child = await child_of(db, parent, Limits(limit_msat=3_000))
    assert await reserve(db, child, 2_000, "a") is None
    assert await state(db, child) == (0, 2_000, 1_000)
    assert await settle(db, child, "a", 2_000, 1_500) == 1_500
    assert await state(db, child) == (1_500, 0, 1_500)
    short = await reserve(db, child, 2_000, "b")  # 1,500 left of the limit
    assert isinstance(short, LimitShort) and short == 1_500
    assert await reserve(db, child, 1_500, "c") is None
    assert await settle(db, child, "c", 1_500, 1_500) == 1_500
    assert await reserve(db, child, 1, "d") == 0
    async with db.read() as conn:
        row = await accounts.key_by_id(conn, parent)
        child_row = await accounts.key_by_id(conn, child)
    assert row is not None and row.balance_msat == 7_000 and row.reserved_msat == 0
    assert row.total_spent_msat == 3_000 and row.total_requests == 2
    assert child_row is not None and child_row.balance_msat == 0 and child_row.reserved_msat == 0
    # the parent itself is not limited by its child's limit
    assert await reserve(db, parent, 7_000, "p") is None
    await assert_books(db)


async def test_the_parents_balance_bounds_an_unlimited_child(db: Database):
    parent = await funded_key(db, 2_000)
    child = await child_of(db, parent, Limits())
    short = await reserve(db, child, 2_001, "a")
    assert short == 2_000 and not isinstance(short, LimitShort)
    assert await reserve(db, child, 2_000, "b") is None
    assert await state(db, child) == (0, 2_000, 0)
    await assert_books(db)


async def test_concurrent_reservations_never_pass_the_limit_nor_the_balance(db: Database):
    parent = await funded_key(db, 10_000)
    children = [await child_of(db, parent, Limits(limit_msat=3_000)) for _ in range(4)]
    calls = [reserve(db, children[i % 4], 1_000, f"r{i}") for i in range(60)]
    results = await asyncio.gather(*calls)
    # 4 children x 3 fit their limits (12,000) but the parent holds 10,000: 10 reservations in all
    assert results.count(None) == 10
    for c in children:
        spent, reserved, _ = await state(db, c)
        assert spent == 0 and reserved <= 3_000
    async with db.read() as conn:
        row = await accounts.key_by_id(conn, parent)
    assert row is not None and row.balance_msat == 0 and row.reserved_msat == 10_000
    await assert_books(db)


async def test_an_overrun_takes_only_what_the_limit_still_allows(db: Database):
    parent = await funded_key(db, 10_000)
    child = await child_of(db, parent, Limits(limit_msat=3_000))
    assert await reserve(db, child, 1_000, "a") is None
    s = await db.ledger.run(ledger_ops.settle, child, "a", 1_000, 5_000, "m", 1, 1, accounts.now_ms())
    assert (s.charge, s.extra, s.unpaid) == (3_000, 2_000, 2_000)
    assert await state(db, child) == (3_000, 0, 0)
    await assert_books(db)


async def test_the_sweep_gives_a_dead_requests_reservation_back_to_both(db: Database):
    parent = await funded_key(db, 10_000)
    child = await child_of(db, parent, Limits(limit_msat=3_000))
    plain = await funded_key(db, 1_000)
    assert await reserve(db, child, 2_500, "dead", now=1) is None
    assert await reserve(db, plain, 1_000, "dead-plain", now=1) is None
    assert await db.ledger.run(ledger_ops.release_expired, accounts.now_ms()) == 2
    assert await state(db, child) == (0, 0, 3_000)
    # settled late, after the sweep: only what is free now, within the limit
    assert await settle(db, child, "dead", 2_500, 500) == 500
    assert await state(db, child) == (500, 0, 2_500)
    await assert_books(db)


async def test_a_period_ends_at_its_boundary_and_validity_ends_the_key(db: Database):
    day = 86_400_000
    t0 = 1_767_225_600_000 + 5_000  # 2026-01-01T00:00:05Z
    parent = await funded_key(db, 10_000)
    child = await child_of(db, parent, Limits(1_000, "daily", t0 + 2 * day), now=t0)
    assert await reserve(db, child, 1_000, "a", now=t0) is None
    assert await settle(db, child, "a", 1_000, 1_000, now=t0) == 1_000
    assert await reserve(db, child, 1, "b", now=t0 + day - 6_000) == 0  # still 2026-01-01
    assert await reserve(db, child, 1_000, "c", now=next_reset("daily", t0)) is None  # 2026-01-02
    assert await settle(db, child, "c", 1_000, 400, now=next_reset("daily", t0)) == 400
    with pytest.raises(AuthenticationFailed) as e:
        await reserve(db, child, 1, "d", now=t0 + 2 * day)
    assert e.value.code == "key_expired"
    await assert_books(db)


async def test_a_child_cannot_make_children_and_the_fee_is_earnings(db: Database):
    parent = await funded_key(db, 5_000)
    child = await child_of(db, parent, Limits())
    async with db.write() as conn:
        refused = await child_store.create_children(conn, child, ["x" * 16], Limits(), 0, 1)
        assert refused.problem == "limited"
        too_dear = await child_store.create_children(conn, parent, ["y" * 16], Limits(), 5_001, 1)
        assert too_dear.problem == "balance"
        made = await child_store.create_children(conn, parent, ["z" * 16, "w" * 16], Limits(), 4_000, 1)
        assert made.problem is None and made.parent_balance == 1_000 and made.children == 1
    async with db.read() as conn:
        sums = await accounts.ledger_sums(conn, parent)
    assert sums == {"credit": 5_000, "reserve": 4_000, "charge": 4_000}
    await assert_books(db)
