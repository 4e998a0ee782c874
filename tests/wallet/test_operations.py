"""The table of swap operations, and what recovery takes from it: each kind's grace, the in-flight set
of its own node only. (What each operation's recovery does at a real mint: tests/node.)"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import update

from routstr.core.swap_kinds import SwapKind
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from routstr.storage.schema import swaps
from routstr.wallet.inflight import IN_FLIGHT_GRACE_S, MELT_GRACE_S
from routstr.wallet.mints import MintRegistry
from routstr.wallet.operations import OPERATIONS, build_registry
from routstr.wallet.recovery import recover_pending
from tests.conftest import fresh_database


def test_every_kind_has_one_operation_and_its_grace() -> None:
    assert set(OPERATIONS) == set(SwapKind)
    assert all(kind == op.kind for kind, op in OPERATIONS.items())
    slow = {k for k, op in OPERATIONS.items() if op.grace_s == MELT_GRACE_S}
    assert slow == {SwapKind.MELT, SwapKind.CONVERT}  # they wait for a Lightning payment
    assert all(op.grace_s == IN_FLIGHT_GRACE_S for k, op in OPERATIONS.items() if k not in slow)
    assert [k for k, op in OPERATIONS.items() if op.undo is None] == [SwapKind.MINT]  # a paid invoice


def test_a_table_missing_a_kind_or_holding_one_twice_is_refused() -> None:
    ops = tuple(OPERATIONS.values())
    with pytest.raises(ValueError, match="no operation"):
        build_registry(ops[1:])
    with pytest.raises(ValueError, match="two operations"):
        build_registry((*ops, dataclasses.replace(ops[0])))


@pytest.mark.asyncio(loop_scope="session")
async def test_swaps_in_flight_are_per_node_and_end_with_their_block() -> None:
    async with aiohttp.ClientSession() as session:  # no call is made
        a, b = MintRegistry(("http://m",), session, 2.0), MintRegistry(("http://m",), session, 2.0)
    with pytest.raises(RuntimeError), a.in_flight.executing("s1"):
        assert "s1" in a.in_flight and "s1" not in b.in_flight
        raise RuntimeError("the mint call failed")
    assert "s1" not in a.in_flight and len(a.in_flight) == 0


@pytest_asyncio.fixture(loop_scope="session")
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database("sqlite", tmp_path) as url:
        await upgrade(url)
        d = Database(url)
        try:
            yield d
        finally:
            await d.close()


def nothing_listens() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def pending_swap(db: Database, swap_id: str, kind: SwapKind, mint: str, age_s: float = 0) -> None:
    async with db.write() as conn:
        key_id = await accounts.create_key(conn, swap_id, "sk", mint, "sat")
        await wallet_store.insert_swap(
            conn,
            swap_id=swap_id,
            kind=kind,
            mint_url=mint,
            unit="sat",
            key_id=key_id,
            token_hash=None,
            inputs=[],
            outputs=[{"amount": 1, "id": "00ab", "secret": "s", "r": "01", "B_": "02", "owner": "node"}],
            detail={"quote": "q"},
        )
        created = accounts.now_ms() - int(age_s * 1000)
        await conn.execute(update(swaps).where(swaps.c.id == swap_id).values(created_at=created))


@pytest.mark.asyncio(loop_scope="session")
async def test_recovery_waits_each_kinds_grace_and_skips_its_own_nodes_swaps_in_flight(db: Database) -> None:
    """The mint is down, so a swap recovery looks at stays pending: the counts say which it looked at."""
    mint = nothing_listens()
    async with aiohttp.ClientSession() as session:
        node, other = MintRegistry((mint,), session, 2.0), MintRegistry((mint,), session, 2.0)
        await pending_swap(db, "young", SwapKind.REDEEM, mint)
        await pending_swap(db, "melt", SwapKind.MELT, mint, age_s=IN_FLIGHT_GRACE_S + 5)
        assert await recover_pending(db, node) == {}  # a swap younger than its grace: maybe in flight
        await pending_swap(db, "old", SwapKind.REDEEM, mint, age_s=IN_FLIGHT_GRACE_S + 5)
        assert await recover_pending(db, node) == {"pending": 1}  # the old redeem; the melt waits longer
        with node.in_flight.executing("young"), node.in_flight.executing("old"):
            assert await recover_pending(db, node, min_age_s=0) == {"pending": 1}  # the melt only
            assert await recover_pending(db, other, min_age_s=0) == {"pending": 3}  # not its swaps
        assert await recover_pending(db, node, min_age_s=0) == {"pending": 3}
