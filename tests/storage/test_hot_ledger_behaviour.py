"""What the hot ledger does (``routstr.storage.hot_ledger``), run the same on SQLite and PostgreSQL.

Every billed request is one ``reserve`` and one ``settle`` through it, so these are the money rules of
the hot path: a reservation never overdraws, however many race; a settlement charges what the request
cost and gives back the rest, once; a dead request's reservation comes back when its lease runs out;
a child key spends its parent's balance within its limit through the same two calls. The amounts
expected are written out here, never computed by the node's code. PostgreSQL comes from
``TEST_POSTGRES_URL``; in CI (``CI`` set) a missing one is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text

from routstr.core.budgets import Limits, LimitShort
from routstr.core.errors import AuthenticationFailed
from routstr.storage import accounts, child_store
from routstr.storage.books import ledger_mismatches
from routstr.storage.db import Database
from routstr.storage.hot_ledger import RENEW_MAX, HotLedger
from routstr.storage.migrate import upgrade
from tests.conftest import fresh_database
from tests.storage.conftest import funded_key

pytestmark = pytest.mark.asyncio(loop_scope="session")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TTL = 60_000


@pytest_asyncio.fixture(loop_scope="session", params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "postgres" and not os.environ.get("TEST_POSTGRES_URL"):
        if os.environ.get("CI"):
            pytest.fail("CI is set but TEST_POSTGRES_URL is not: the PostgreSQL hot ledger goes untested")
        pytest.skip("set TEST_POSTGRES_URL to run the hot ledger's behaviour on PostgreSQL")
    async with fresh_database(request.param, tmp_path) as url:
        await upgrade(url)
        d = Database(url)
        try:
            yield d
        finally:
            await d.close()


async def child_of(db: Database, parent: int, limits: Limits) -> int:
    async with db.write() as conn:
        made = await child_store.create_children(conn, parent, [os.urandom(8).hex()], limits, 0, T0)
        assert made.problem is None
        q = await conn.execute(text("SELECT max(key_id) FROM key_limits WHERE payer_id = :p"), {"p": parent})
        return int(q.scalar_one())


async def key(db: Database, key_id: int) -> tuple[int, int, int, int]:
    """(available, reserved, total spent, total requests) as stored."""
    async with db.read() as conn:
        row = await accounts.key_by_id(conn, key_id)
    assert row is not None
    return row.balance_msat, row.reserved_msat, row.total_spent_msat, row.total_requests


async def rows(db: Database, sql: str, **params: object) -> list[tuple[object, ...]]:
    async with db.read() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), params)).all()]


async def assert_books(db: Database) -> None:
    """Every key's ledger sums to its stored balances; every limit's counter to its reservations."""
    async with db.read() as conn:
        assert await ledger_mismatches(conn) == []
        assert await child_store.counter_mismatches(conn) == []


async def test_a_reservation_within_the_balance_is_held_until_its_lease_ends(db: Database) -> None:
    k = await funded_key(db, 5_000)
    ledger: HotLedger = db.ledger
    assert await ledger.reserve(k, 3_000, "r1", "m", T0, TTL) is None
    assert await key(db, k) == (2_000, 3_000, 0, 0)
    assert await rows(db, "SELECT key_id, amount_msat, expires_at FROM reservations") == [
        (k, 3_000, T0 + TTL)
    ]
    assert await ledger.reserve(k, 2_000, "r2", "m", T0, TTL) is None  # all of it
    assert await key(db, k) == (0, 5_000, 0, 0)
    await assert_books(db)


async def test_a_reservation_beyond_the_balance_is_refused_and_holds_nothing(db: Database) -> None:
    k = await funded_key(db, 5_000)
    assert await db.ledger.reserve(k, 5_001, "big", "m", T0, TTL) == 5_000  # what there is
    assert await db.ledger.reserve(10**9, 1, "nobody", "m", T0, TTL) == 0  # no such key
    assert await key(db, k) == (5_000, 0, 0, 0)
    assert await rows(db, "SELECT request_id FROM reservations") == []
    assert await rows(db, "SELECT kind FROM ledger WHERE request_id IS NOT NULL") == []


@pytest.mark.parametrize(
    ("cost", "charge", "release", "extra"),
    [(0, 0, 1_000, 0), (400, 400, 600, 0), (1_000, 1_000, 0, 0), (1_700, 1_700, 0, 700)],
)
async def test_a_settlement_charges_the_cost_and_releases_the_rest(
    db: Database, cost: int, charge: int, release: int, extra: int
) -> None:
    """Under, at and over the reservation (an overrun takes the rest from what is free)."""
    k = await funded_key(db, 5_000)
    assert await db.ledger.reserve(k, 1_000, "s1", "m", T0, TTL) is None
    s = await db.ledger.settle(k, "s1", 1_000, cost, "m", 10, 20, T0 + 1)
    assert (s.charge, s.release, s.extra, s.unpaid) == (charge, release, extra, 0)
    assert await key(db, k) == (5_000 - cost, 0, cost, 1)
    assert await rows(db, "SELECT request_id FROM reservations") == []
    q = "SELECT kind, amount_msat, prompt_tokens, completion_tokens, model FROM ledger WHERE request_id='s1'"
    by_kind = await rows(db, q)
    expected = {("reserve", 1_000, None, None, "m")}
    expected |= {("charge", charge, 10, 20, "m")} if charge else set()
    expected |= {("release", release, None, None, "m")} if release else set()
    expected |= {("reserve", extra, None, None, "m")} if extra else set()
    assert set(by_kind) == expected and len(by_kind) == len(expected)
    await assert_books(db)


async def test_an_overrun_beyond_the_balance_is_written_off_never_negative(db: Database) -> None:
    k = await funded_key(db, 1_500)
    assert await db.ledger.reserve(k, 1_000, "o", "m", T0, TTL) is None
    s = await db.ledger.settle(k, "o", 1_000, 2_000, "m", 1, 1, T0)
    assert (s.charge, s.release, s.extra, s.unpaid) == (1_500, 0, 500, 500)
    assert await key(db, k) == (0, 0, 1_500, 1)
    await assert_books(db)


async def test_amounts_beyond_32_bits(db: Database) -> None:
    k = await funded_key(db, 10_000_000_000_000)  # 10 BTC in msat
    assert await db.ledger.reserve(k, 5_000_000_000_000, "big", "m", T0, TTL) is None
    s = await db.ledger.settle(k, "big", 5_000_000_000_000, 3_000_000_000_001, "m", 1, 1, T0)
    assert (s.charge, s.release) == (3_000_000_000_001, 1_999_999_999_999)
    assert await key(db, k) == (6_999_999_999_999, 0, 3_000_000_000_001, 1)
    await assert_books(db)


async def test_settling_the_same_request_twice_charges_once(db: Database) -> None:
    k = await funded_key(db, 5_000)
    assert await db.ledger.reserve(k, 1_000, "twice", "m", T0, TTL) is None
    first = await db.ledger.settle(k, "twice", 1_000, 400, "m", 1, 1, T0)
    again = await db.ledger.settle(k, "twice", 1_000, 400, "m", 1, 1, T0)
    assert (first.charge, first.release) == (400, 600)
    assert (again.charge, again.release, again.extra, again.unpaid) == (0, 0, 0, 0)
    assert await key(db, k) == (4_600, 0, 400, 1)
    both = await asyncio.gather(*(db.ledger.settle(k, "twice", 1_000, 400, "m", 1, 1, T0) for _ in range(5)))
    assert all(s.charge == 0 for s in both) and await key(db, k) == (4_600, 0, 400, 1)
    await assert_books(db)


async def test_concurrent_reservations_never_overdraw(db: Database) -> None:
    k = await funded_key(db, 10_000)
    got = await asyncio.gather(*(db.ledger.reserve(k, 1_000, f"r{i}", "m", T0, TTL) for i in range(60)))
    assert got.count(None) == 10 and all(g is None or 0 <= g < 1_000 for g in got)
    assert await key(db, k) == (0, 10_000, 0, 0)
    await assert_books(db)


async def test_many_requests_reserving_and_settling_at_once_add_up(db: Database) -> None:
    k = await funded_key(db, 20_000)

    async def request(i: int) -> int:
        if await db.ledger.reserve(k, 1_000, f"q{i}", "m", T0, TTL) is not None:
            return 0
        await asyncio.sleep(0)
        return (await db.ledger.settle(k, f"q{i}", 1_000, 300 + i, "m", 1, 1, T0)).charge

    charged = await asyncio.gather(*(request(i) for i in range(80)))
    served = [i for i, c in enumerate(charged) if c]
    assert charged == [300 + i if i in served else 0 for i in range(80)]
    available, reserved, spent, count = await key(db, k)
    assert (available, reserved, spent, count) == (20_000 - sum(charged), 0, sum(charged), len(served))
    assert len(served) >= 20  # at least the first 20 fit, whatever the interleaving
    await assert_books(db)


async def test_a_settlement_whose_caller_is_cancelled_still_completes(db: Database) -> None:
    k = await funded_key(db, 5_000)
    assert await db.ledger.reserve(k, 1_000, "c1", "m", T0, TTL) is None
    call = asyncio.ensure_future(db.ledger.settle(k, "c1", 1_000, 300, "m", 1, 1, T0))
    await asyncio.sleep(0)  # under way, then its caller goes away
    call.cancel()
    for _ in range(250):
        if (await key(db, k))[3] == 1:
            break
        await asyncio.sleep(0.02)
    assert await key(db, k) == (4_700, 0, 300, 1)


async def test_renewed_leases_survive_the_sweep_and_expired_ones_come_back(db: Database) -> None:
    k = await funded_key(db, 10_000)
    for ref in ("alive", "dead", "dead2"):
        assert await db.ledger.reserve(k, 2_000, ref, "m", T0, TTL) is None
    assert await db.ledger.renew(["alive", "gone"], T0 + 10 * TTL) == 1
    assert await db.ledger.renew([], T0) == 0
    assert await db.ledger.release_expired(T0 + TTL - 1) == 0  # not yet
    assert await db.ledger.release_expired(T0 + 5 * TTL) == 2
    assert await db.ledger.release_expired(T0 + 5 * TTL) == 0  # once
    assert await key(db, k) == (8_000, 2_000, 0, 0)
    assert await rows(db, "SELECT request_id FROM reservations") == [("alive",)]
    s = await db.ledger.settle(k, "alive", 2_000, 500, "m", 1, 1, T0 + 6 * TTL)
    assert (s.charge, s.release) == (500, 1_500)
    with pytest.raises(ValueError):
        await db.ledger.renew([f"r{i}" for i in range(RENEW_MAX + 1)], T0)
    await assert_books(db)


async def test_a_request_settled_after_the_sweep_pays_only_what_is_free(db: Database) -> None:
    k = await funded_key(db, 5_000)
    assert await db.ledger.reserve(k, 2_000, "late", "m", T0, TTL) is None
    assert await db.ledger.release_expired(T0 + 2 * TTL) == 1
    assert await key(db, k) == (5_000, 0, 0, 0)
    s = await db.ledger.settle(k, "late", 2_000, 7_000, "m", 1, 1, T0 + 3 * TTL)
    assert (s.charge, s.release, s.extra, s.unpaid) == (5_000, 0, 5_000, 2_000)
    assert await key(db, k) == (0, 0, 5_000, 1)
    await assert_books(db)


async def test_a_child_key_spends_its_parents_balance_within_its_limit(db: Database) -> None:
    parent = await funded_key(db, 10_000)
    child = await child_of(db, parent, Limits(limit_msat=3_000))
    assert await db.ledger.reserve(child, 2_000, "a", "m", T0, TTL) is None
    assert await key(db, parent) == (8_000, 2_000, 0, 0)
    s = await db.ledger.settle(child, "a", 2_000, 1_500, "m", 1, 1, T0)
    assert (s.charge, s.release) == (1_500, 500)
    assert (await db.ledger.settle(child, "a", 2_000, 1_500, "m", 1, 1, T0)).charge == 0  # once
    short = await db.ledger.reserve(child, 2_000, "b", "m", T0, TTL)  # 1,500 left of the limit
    assert isinstance(short, LimitShort) and short == 1_500
    assert await db.ledger.reserve(child, 1_500, "c", "m", T0, TTL) is None
    assert await db.ledger.release_expired(T0 + 2 * TTL) == 1  # its request died: back to both
    assert await key(db, parent) == (8_500, 0, 1_500, 1)
    assert await key(db, child) == (0, 0, 0, 0)  # a child holds no money of its own
    assert await db.ledger.reserve(parent, 8_500, "p", "m", T0, TTL) is None  # not bound by the child's
    await assert_books(db)


async def test_children_racing_never_pass_their_limits_nor_the_parents_balance(db: Database) -> None:
    parent = await funded_key(db, 10_000)
    children = [await child_of(db, parent, Limits(limit_msat=3_000)) for _ in range(4)]
    got = await asyncio.gather(
        *(db.ledger.reserve(children[i % 4], 1_000, f"r{i}", "m", T0, TTL) for i in range(60))
    )
    assert got.count(None) == 10  # 4 x 3,000 fit the limits, the parent holds 10,000
    assert await key(db, parent) == (0, 10_000, 0, 0)
    await assert_books(db)


async def test_an_expired_child_key_is_refused(db: Database) -> None:
    parent = await funded_key(db, 10_000)
    child = await child_of(db, parent, Limits(1_000, None, T0 + TTL))
    assert await db.ledger.reserve(child, 500, "ok", "m", T0, TTL) is None
    with pytest.raises(AuthenticationFailed) as e:
        await db.ledger.reserve(child, 1, "late", "m", T0 + TTL, TTL)
    assert e.value.code == "key_expired"
    assert await key(db, parent) == (9_500, 500, 0, 0)
    await assert_books(db)
