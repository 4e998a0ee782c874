"""A crash between the mint's answer and our commit loses nothing.

The crash is made by failing the step right after the mint swap (what a killed process leaves on
disk is exactly that: the swap recorded as pending with its outputs, nothing after it). Recovery
must then finish the swap from the mint's own records (NUT-09 restore) or undo it (NUT-07).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from routstr.cashu.errors import MintUnavailable
from routstr.cashu.mint_client import MintClient
from routstr.cashu.tokens import decode_token
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage import wallet_store
from routstr.wallet import redeem, refund
from routstr.wallet.recovery import recover_pending
from tests.conftest import NodeHandle, chat_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Crash(Exception):
    pass


async def _crash(*_: Any, **__: Any) -> Any:
    raise Crash("process died here")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def swap_state(node: NodeHandle, swap_id: str) -> str:
    async with node.db.read() as conn:
        swap = await wallet_store.swap_by_id(conn, swap_id)
    assert swap is not None
    return swap.state


async def pending(node: NodeHandle) -> list[wallet_store.SwapRow]:
    async with node.db.read() as conn:
        return await wallet_store.pending_swaps(conn)


async def test_crash_after_redeem_swap_is_recovered(
    node: NodeHandle,
    wallet: TestWallet,
    mint_url: str,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
):
    token = await wallet.asend(mint_url, 21)
    monkeypatch.setattr(redeem, "complete_swap", _crash)
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer(token)
    ) as r:
        assert r.status == 500
    monkeypatch.undo()
    assert set(await wallet.acheck(token)) == {"SPENT"}  # the mint did swap it
    assert [s.kind for s in await pending(node)] == ["redeem"]

    swap_id = (await pending(node))[0].id
    await recover_pending(
        node.db, node.app[NODE].mints, min_age_s=0
    )  # (the node's own minutely run may beat us to it)
    assert await swap_state(node, swap_id) == "done"
    key_id = await node.app[NODE].auth.key_id(token)
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 21_000
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer(token)
    ) as r:
        assert r.status == 200
    assert (await node.ledger_sums(key_id))["credit"] == 21_000


async def test_crash_before_the_mint_saw_the_swap_frees_the_token(
    node: NodeHandle,
    wallet: TestWallet,
    mint_url: str,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
):
    token = await wallet.asend(mint_url, 13)

    async def lost(*_: Any, **__: Any) -> Any:
        raise MintUnavailable("read timeout", maybe_processed=True)  # ambiguous: we cannot tell

    monkeypatch.setattr(MintClient, "swap", lost)
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer(token)
    ) as r:
        assert r.status == 503
        assert (await r.json())["error"]["type"] == "service_unavailable"
    monkeypatch.undo()
    assert set(await wallet.acheck(token)) == {"UNSPENT"}
    swap_id = (await pending(node))[0].id
    await recover_pending(node.db, node.app[NODE].mints, min_age_s=0)
    assert await swap_state(node, swap_id) == "failed"
    # the token is the user's again: using it now credits it, once
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer(token)
    ) as r:
        assert r.status == 200, await r.text()
    key_id = await node.app[NODE].auth.key_id(token)
    assert (await node.ledger_sums(key_id))["credit"] == 13_000
    await node.assert_books_balance(key_id)


async def test_crash_after_refund_swap_hands_the_token_out_later(
    node: NodeHandle,
    wallet: TestWallet,
    mint_url: str,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
):
    token = await wallet.asend(mint_url, 17)
    key_id = await node.app[NODE].auth.key_id(token)
    monkeypatch.setattr(refund, "complete_swap", _crash)
    async with http.post(node.v1 + "/balance/refund", headers=bearer(token)) as r:
        assert r.status == 500
    monkeypatch.undo()
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 0  # debited: the refund is on its way
    async with http.post(node.v1 + "/balance/refund", headers=bearer(token)) as r:
        assert r.status == 200, await r.text()
        again = await r.json()
    assert again["amount"] == 17
    assert await wallet.areceive(again["token"]) == 17
    assert await pending(node) == []
    async with http.post(node.v1 + "/balance/refund", headers=bearer(token)) as r:
        assert r.status == 400  # handed out once


async def test_an_abandoned_redeem_keeps_no_spendable_proofs(
    node: NodeHandle,
    wallet: TestWallet,
    mint_url: str,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
):
    token = await wallet.asend(mint_url, 4)

    async def refused(*_: Any, **__: Any) -> Any:
        raise MintUnavailable("connection refused", maybe_processed=False)

    monkeypatch.setattr(MintClient, "swap", refused)
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer(token)
    ) as r:
        assert r.status == 503
    monkeypatch.undo()
    from sqlalchemy import select

    from routstr.storage.schema import swaps

    async with node.db.read() as conn:
        rows = (await conn.execute(select(swaps.c.inputs).where(swaps.c.state == "failed"))).all()
    secrets = {p.secret for p in decode_token(token).proofs}
    assert rows and not any(s in row[0] for row in rows for s in secrets)
    assert set(await wallet.acheck(token)) == {"UNSPENT"}


async def test_recovery_leaves_a_swap_in_flight_alone(
    node: NodeHandle,
    wallet: TestWallet,
    mint_url: str,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
):
    """The recovery job firing while a redeem is waiting for the mint must not undo it: to recovery
    it looks like a swap that never happened. (Seen under load before swaps in flight were tracked.)"""
    token = await wallet.asend(mint_url, 9)
    real_swap = MintClient.swap
    ran: list[dict[str, int]] = []

    async def swap_with_recovery_racing(self: MintClient, *args: Any, **kwargs: Any) -> Any:
        ran.append(await recover_pending(node.db, node.app[NODE].mints, min_age_s=0))
        return await real_swap(self, *args, **kwargs)

    monkeypatch.setattr(MintClient, "swap", swap_with_recovery_racing)
    async with http.get(node.v1 + "/balance/info", headers=bearer(token)) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["balance"] == 9000
    assert ran and all(counts == {} for counts in ran)  # it saw the swap and left it alone
    monkeypatch.undo()
    await node.assert_books_balance(await node.app[NODE].auth.key_id(token))
