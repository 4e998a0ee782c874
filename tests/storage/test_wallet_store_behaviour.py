"""What the swap and proof store does, run the same on SQLite and PostgreSQL.

The crash-safety of every operation rests on these: a swap is on disk (with what it takes to finish it)
before it is sent; it moves out of pending once, whoever tries; its proofs and its credit commit
together or not at all; undoing it gives back exactly what it took. PostgreSQL comes from
``TEST_POSTGRES_URL``; in CI (``CI`` set) a missing one is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from routstr.core.ids import PROCESS
from routstr.core.swap_kinds import ProofState, SwapKind, SwapState
from routstr.storage import accounts, refund_store, wallet_store
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from routstr.storage.schema import proofs
from tests.conftest import fresh_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
MINT = "http://mint.test"


@pytest_asyncio.fixture(loop_scope="session", params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "postgres" and not os.environ.get("TEST_POSTGRES_URL"):
        if os.environ.get("CI"):
            pytest.fail("CI is set but TEST_POSTGRES_URL is not: the PostgreSQL store goes untested")
        pytest.skip("set TEST_POSTGRES_URL to run the store's behaviour on PostgreSQL")
    async with fresh_database(request.param, tmp_path) as url:
        await upgrade(url)
        d = Database(url)
        try:
            yield d
        finally:
            await d.close()


def output(i: int, owner: str = "node") -> dict[str, Any]:
    return {"amount": 2**i, "id": "00ab", "secret": f"out{i}", "r": f"r{i}", "B_": f"b{i}", "owner": owner}


def proof(i: int, amount: int) -> dict[str, Any]:
    return {"id": "00ab", "amount": amount, "secret": f"p{i}", "C": f"c{i}", "Y": f"y{i}"}


async def new_key(db: Database, msat: int = 0) -> int:
    async with db.write() as conn:
        key_id = await accounts.create_key(conn, os.urandom(8).hex(), "sk", MINT, "sat")
        if msat:
            await accounts.credit(conn, key_id, msat)
    return key_id


async def record(
    db: Database,
    swap_id: str,
    kind: SwapKind,
    key_id: int | None,
    *,
    token_hash: str | None = None,
    inputs: list[dict[str, Any]] | None = None,
    user_amount: int = 0,
) -> None:
    async with db.write() as conn:
        await wallet_store.insert_swap(
            conn,
            swap_id=swap_id,
            kind=kind,
            mint_url=MINT,
            unit="sat",
            key_id=key_id,
            token_hash=token_hash,
            inputs=inputs if inputs is not None else [{"secret": f"in-{swap_id}", "amount": 4}],
            outputs=[output(0), output(2, "user")],
            user_amount=user_amount,
            detail={"quote": "q1"},
            holder_mark="mark",
        )


async def swap(db: Database, swap_id: str) -> wallet_store.SwapRow:
    async with db.read() as conn:
        row = await wallet_store.swap_by_id(conn, swap_id)
    assert row is not None
    return row


async def balance(db: Database, key_id: int) -> int:
    async with db.read() as conn:
        key = await accounts.key_by_id(conn, key_id)
    assert key is not None
    return key.balance_msat


async def proof_states(db: Database) -> dict[str, tuple[str, str | None]]:
    async with db.read() as conn:
        rows = (await conn.execute(select(proofs.c.secret, proofs.c.state, proofs.c.spent_by))).all()
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_a_swap_is_on_disk_with_its_outputs_before_it_is_sent(db: Database) -> None:
    key_id = await new_key(db)
    await record(db, "s1", SwapKind.REDEEM, key_id, token_hash="t1", user_amount=5)
    s = await swap(db, "s1")
    assert (s.kind, s.state) == (SwapKind.REDEEM, SwapState.PENDING)
    assert isinstance(s.kind, SwapKind) and isinstance(s.state, SwapState)
    assert s.outputs == [output(0), output(2, "user")]  # secrets and blinding factors, to restore it
    assert s.inputs == [{"secret": "in-s1", "amount": 4}]
    assert (s.key_id, s.token_hash, s.holder_mark, s.user_amount) == (key_id, "t1", "mark", 5)
    assert s.detail == {"quote": "q1"} and s.executor == PROCESS and s.created_at > 0
    async with db.read() as conn:
        assert [p.id for p in await wallet_store.pending_swaps(conn)] == ["s1"]
        assert (await wallet_store.swap_by_token_hash(conn, "t1")) == s
        # a redemption in flight counts against the mint's exposure until it ends
        assert await wallet_store.exposure_units(conn, MINT, "sat") == 5
    with pytest.raises(IntegrityError):  # a token is recorded once
        await record(db, "s2", SwapKind.REDEEM, key_id, token_hash="t1")
    async with db.read() as conn:
        assert await wallet_store.swap_by_id(conn, "s2") is None


async def test_a_swap_finishes_once(db: Database) -> None:
    key_id = await new_key(db)
    await record(db, "r1", SwapKind.REDEEM, key_id, token_hash="t")
    await record(db, "f1", SwapKind.REFUND, key_id)
    async with db.write() as conn:
        assert await wallet_store.finish_swap(conn, "r1", SwapState.DONE)
        assert await wallet_store.finish_swap(conn, "f1", SwapState.DONE, result_token="cashuB1")
    async with db.write() as conn:  # a second finisher changes nothing
        assert not await wallet_store.finish_swap(conn, "f1", SwapState.FAILED, result_token="cashuB2")
    redeemed, refunded = await swap(db, "r1"), await swap(db, "f1")
    assert redeemed.state == refunded.state == SwapState.DONE
    assert redeemed.inputs == []  # a user's token: wiped as it ends
    assert refunded.inputs == [{"secret": "in-f1", "amount": 4}]  # the node's own proofs: kept
    assert refunded.result_token == "cashuB1" and refunded.error is None
    async with db.read() as conn:
        assert await wallet_store.pending_swaps(conn) == []
        assert await wallet_store.exposure_units(conn, MINT, "sat") == 0


async def test_proofs_and_credit_commit_together_or_not_at_all(db: Database) -> None:
    key_id = await new_key(db)
    await record(db, "m1", SwapKind.MINT, key_id)

    async def complete(fail: bool) -> None:
        async with db.write() as conn:
            assert await wallet_store.finish_swap(conn, "m1", SwapState.DONE)
            await wallet_store.add_proofs(conn, MINT, "sat", "m1", [proof(1, 1), proof(2, 4)])
            await accounts.credit(conn, key_id, 5000, ref="m1")
            if fail:
                raise RuntimeError("the process died before the commit")

    with pytest.raises(RuntimeError):
        await complete(fail=True)
    assert (await swap(db, "m1")).state == SwapState.PENDING
    assert await proof_states(db) == {}
    assert await balance(db, key_id) == 0
    await complete(fail=False)
    assert (await swap(db, "m1")).state == SwapState.DONE
    assert await proof_states(db) == {"p1": (ProofState.UNSPENT, None), "p2": (ProofState.UNSPENT, None)}
    assert await balance(db, key_id) == 5000
    async with db.read() as conn:
        assert await accounts.ledger_sums(conn, key_id) == {"credit": 5000}
        assert await wallet_store.wallet_total(conn, MINT, "sat") == 5


async def test_of_concurrent_finishers_one_wins(db: Database) -> None:
    """Every finisher reads the swap pending, then all try at once: one credits, the others see False.
    (On PostgreSQL they really overlap; SQLite's one writer runs them in turn.)"""
    key_id = await new_key(db)
    await record(db, "c1", SwapKind.REDEEM, key_id, token_hash="tc")
    n = 6
    gate = None if db.is_sqlite else asyncio.Barrier(n)

    saw_pending: list[bool] = []

    async def finisher(i: int) -> bool:
        async with db.write() as conn:
            seen = await wallet_store.swap_by_id(conn, "c1")
            saw_pending.append(seen is not None and seen.state == SwapState.PENDING)
            if gate is not None:
                await gate.wait()
            if not await wallet_store.finish_swap(conn, "c1", SwapState.DONE):
                return False
            await wallet_store.add_proofs(conn, MINT, "sat", "c1", [proof(10 + i, 8)])
            await accounts.credit(conn, key_id, 8000, ref="c1")
            return True

    won = await asyncio.gather(*(finisher(i) for i in range(n)))
    assert sorted(won) == [False] * (n - 1) + [True]
    assert all(saw_pending) or db.is_sqlite  # they did race (SQLite: the later ones see it done)
    async with db.read() as conn:
        assert await accounts.ledger_sums(conn, key_id) == {"credit": 8000}
        assert await wallet_store.wallet_total(conn, MINT, "sat") == 8


async def test_concurrent_swaps_never_take_the_same_proof(db: Database) -> None:
    async with db.write() as conn:
        await wallet_store.add_proofs(conn, MINT, "sat", "seed", [proof(i, 4) for i in range(6)])
    n = 6
    gate = None if db.is_sqlite else asyncio.Barrier(n)

    async def taker(i: int) -> list[str]:
        async with db.write() as conn:
            if gate is not None:
                await gate.wait()
            got = await wallet_store.take_proofs(conn, MINT, "sat", 4, f"w{i}")
        assert got is not None
        return [p["secret"] for p in got]

    taken = [s for got in await asyncio.gather(*(taker(i) for i in range(n))) for s in got]
    assert sorted(taken) == [f"p{i}" for i in range(6)]  # each proof once
    states = await proof_states(db)
    assert {state for state, _ in states.values()} == {ProofState.RESERVED}
    assert len({by for _, by in states.values()}) == n
    async with db.write() as conn:
        assert await wallet_store.take_proofs(conn, MINT, "sat", 1, "w-late") is None


async def test_spent_marks_and_undone_swaps_give_the_proofs_back(db: Database) -> None:
    async with db.write() as conn:
        await wallet_store.add_proofs(conn, MINT, "sat", "seed", [proof(1, 1), proof(2, 2), proof(3, 8)])
    async with db.write() as conn:
        assert await wallet_store.take_proofs(conn, MINT, "sat", 3, "gone") is not None
        assert await wallet_store.take_proofs(conn, MINT, "sat", 8, "undone") is not None
        # reserved proofs are still the node's until their swap ends
        assert await wallet_store.wallet_total(conn, MINT, "sat") == 11
    async with db.write() as conn:
        await wallet_store.settle_inputs(conn, "gone", spent=True)
        await wallet_store.settle_inputs(conn, "undone", spent=False)
    assert await proof_states(db) == {
        "p1": (ProofState.SPENT, "gone"),
        "p2": (ProofState.SPENT, "gone"),
        "p3": (ProofState.UNSPENT, None),
    }
    async with db.read() as conn:
        assert await wallet_store.wallet_total(conn, MINT, "sat") == 8


async def test_an_undone_redeem_frees_its_token_and_drops_an_unfunded_key(db: Database) -> None:
    fresh, funded = await new_key(db), await new_key(db, 1000)
    await record(db, "u1", SwapKind.REDEEM, fresh, token_hash="tu")
    await record(db, "u2", SwapKind.REDEEM, funded, token_hash="tv")
    await record(db, "u3", SwapKind.REDEEM, funded, token_hash="tw")
    async with db.write() as conn:
        await wallet_store.abandon_redeem(conn, "u1")
        await wallet_store.abandon_redeem(conn, "u2")
        await wallet_store.abandon_redeem(conn, "u3", forget=True)  # refused by the mint: no row kept
    undone = await swap(db, "u1")
    assert undone.state == SwapState.FAILED
    assert (undone.token_hash, undone.key_id, undone.inputs) == (None, None, [])
    async with db.read() as conn:
        assert await accounts.key_by_id(conn, fresh) is None  # made for this token, never funded
        assert await accounts.key_by_id(conn, funded) is not None
        assert await wallet_store.swap_by_id(conn, "u3") is None
        assert await wallet_store.pending_swaps(conn) == []
    await record(db, "u4", SwapKind.REDEEM, funded, token_hash="tu")  # the token may be tried again
    async with db.write() as conn:  # an ended swap cannot be undone
        assert not await wallet_store.finish_swap(conn, "u1", SwapState.DONE)


async def test_a_refund_token_is_handed_out_once_and_kept_until_spent(db: Database) -> None:
    key_id = await new_key(db)
    for sid, token in (("a", "cashuBa"), ("b", "cashuBb")):
        await record(db, sid, SwapKind.REFUND, key_id)
        async with db.write() as conn:
            assert await wallet_store.finish_swap(conn, sid, SwapState.DONE, result_token=token)
    async with db.write() as conn:
        assert [s.id for s in await wallet_store.refund_swaps(conn, key_id, SwapState.DONE)] == ["a", "b"]
        assert await wallet_store.mark_collected(conn, "a")
        assert not await wallet_store.mark_collected(conn, "a")  # another request took it
        assert [s.id for s in await wallet_store.refund_swaps(conn, key_id, SwapState.DONE)] == ["b"]
        assert [s.id for s in await refund_store.open_refunds(conn, key_id)] == ["a", "b"]
        await refund_store.mark_spent(conn, ["a"])
        assert [s.id for s in await refund_store.open_refunds(conn, key_id)] == ["b"]
        latest = await wallet_store.latest_refund(conn, key_id)
    assert latest is not None and latest.result_token in ("cashuBa", "cashuBb")
