"""The audit while a swap's answer is lost: the mint carried out a refund and the node has not stored
its result yet (the mint killed mid-answer in tests/node/test_mint_outage.py; the node killed right
after the swap here, at a failpoint, so the moment is exact).

The refund's inputs are then reserved by its pending swap and SPENT at the mint, its outputs signed
there: no loss, recovery stores them (NUT-09 restore). The audit said "not unspent" all the same.
Proofs really gone (spent at the mint by anyone else) are still found, reserved or not.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from sqlalchemy import select, update

from routstr.cashu.nut00 import Proof
from routstr.cashu.tokens import Token, encode_token_v4
from routstr.config.load import load_settings
from routstr.core.swap_kinds import ProofState, SwapKind
from routstr.devtools.test_wallet import TestWallet
from routstr.storage import wallet_store
from routstr.storage.db import Database
from routstr.storage.schema import proofs
from routstr.wallet.audit import AuditReport, audit
from routstr.wallet.mints import MintRegistry
from tests.node.node_process import NodeProcess, assert_audit_passes, balance_of, post_dies

pytestmark = pytest.mark.asyncio(loop_scope="session")


@asynccontextmanager
async def _books(node: NodeProcess) -> AsyncIterator[tuple[Database, MintRegistry]]:
    """The node's database and mints, as ``routstr audit`` opens them."""
    settings = load_settings(node.env, env_file=None)
    db = Database(settings.database_url)
    try:
        async with aiohttp.ClientSession() as session:
            yield db, MintRegistry(settings.cashu_mints, session, settings.mint_timeout_s)
    finally:
        await db.close()


async def _refund_answer_lost(node: NodeProcess, http: aiohttp.ClientSession, token: str) -> None:
    """The node swaps the key's balance into a refund token at the mint and dies before storing it."""
    await asyncio.to_thread(node.start, "refund.after_swap")
    assert (await balance_of(http, node, token))["balance"] == 25_000
    await post_dies(http, node.url + "/v1/balance/refund", headers={"Authorization": f"Bearer {token}"})
    assert node.wait_killed() == -signal.SIGKILL


async def _pending_refund(db: Database) -> tuple[str, list[str]]:
    """The one pending swap (the refund), and the Ys of the proofs it reserved."""
    async with db.read() as conn:
        [swap] = await wallet_store.pending_swaps(conn)
        assert swap.kind == SwapKind.REFUND
        q = select(proofs.c.Y).where(proofs.c.spent_by == swap.id, proofs.c.state == ProofState.RESERVED)
        return swap.id, [str(y) for y in (await conn.execute(q)).scalars()]


async def test_a_refund_the_mint_made_whose_answer_was_lost_is_no_loss(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
) -> None:
    token = await wallet.asend(mint_url, 25)
    await _refund_answer_lost(node_proc, http, token)
    async with _books(node_proc) as (db, mints):
        _, reserved = await _pending_refund(db)
        assert reserved
        # the state under test: the mint spent them (the swap happened), the node has not stored it
        assert set((await mints.client(mint_url).check_state(reserved)).values()) == {"SPENT"}
        report: AuditReport = await audit(db, mints)
        assert report.ok, report.problems
        assert report.proofs_settling == len(reserved)
    await assert_audit_passes(node_proc)  # the operator's ``routstr audit`` agrees
    # recovery at start-up stores the refund (NUT-09 restore); asked again, its token is handed out
    await asyncio.to_thread(node_proc.start)
    async with http.post(
        node_proc.url + "/v1/balance/refund", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 200, await r.text()
        refund = await r.json()
    assert refund["amount"] == 25 and await wallet.areceive(refund["token"]) == 25
    assert (await balance_of(http, node_proc, token))["balance"] == 0
    await assert_audit_passes(node_proc)


async def test_proofs_spent_by_anyone_else_are_still_a_loss(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
) -> None:
    """Two of the node's proofs are spent at the mint by a thief with a copy of its database: one
    left unspent in the books, one marked reserved by the pending refund (whose outputs the mint did
    sign, but whose inputs it is not). Both are losses; the refund's own inputs are not."""
    other = await wallet.asend(mint_url, 12)  # another key's money: 8 + 4, proofs of their own
    token = await wallet.asend(mint_url, 25)
    await asyncio.to_thread(node_proc.start)
    assert (await balance_of(http, node_proc, other))["balance"] == 12_000
    node_proc.stop()
    await _refund_answer_lost(node_proc, http, token)
    async with _books(node_proc) as (db, mints):
        refund_id, reserved = await _pending_refund(db)
        async with db.read() as conn:
            q = select(proofs.c.Y, proofs.c.keyset_id, proofs.c.amount, proofs.c.secret, proofs.c.C)
            stolen = (await conn.execute(q.where(proofs.c.state == ProofState.UNSPENT))).all()
        assert len(stolen) == 2
        for _, kid, amount, secret, c in stolen:  # the thief redeems them at the mint
            proof = Proof(amount=int(amount), id=str(kid), secret=str(secret), C=str(c))
            assert await wallet.areceive(encode_token_v4(Token(mint=mint_url, unit="sat", proofs=[proof])))
        async with db.write() as conn:
            await conn.execute(
                update(proofs)
                .where(proofs.c.Y == stolen[0][0])
                .values(state=ProofState.RESERVED, spent_by=refund_id)
            )
        report = await audit(db, mints)
        assert report.problems == [f"2 proofs the node counts as its own are not unspent at {mint_url}"]
        assert report.proofs_settling == len(reserved)
