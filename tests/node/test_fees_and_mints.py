"""Mint input fees (NUT-02) are accounted: the credit is what the node really received, and a
refund's fee is paid out of the refund. A node trusts several mints and keeps their eCash apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from routstr.cashu.tokens import decode_token
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from tests.conftest import NodeHandle, Upstream, _backends, chat_body, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session", params=_backends())
async def two_mint_node(
    request: pytest.FixtureRequest,
    mint_url: str,
    fee_mint: NutshellMint,
    fake_upstream: Upstream,
    tmp_path: Path,
) -> AsyncIterator[NodeHandle]:
    async with running_node(request.param, f"{mint_url},{fee_mint.url}", fake_upstream, tmp_path) as n:
        yield n


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_input_fees_are_paid_by_the_token_and_by_the_refund(
    two_mint_node: NodeHandle, wallet: TestWallet, fee_mint: NutshellMint, http: aiohttp.ClientSession
):
    node = two_mint_node
    token = await wallet.asend(fee_mint.url, 100)
    inputs = len(decode_token(token).proofs)
    async with http.get(node.v1 + "/balance/info", headers=bearer(token)) as r:
        info = await r.json()
    assert info["mint"] == fee_mint.url
    assert info["balance"] == (100 - inputs) * 1000  # the mint kept 1 sat per input of the redeem swap
    async with http.post(node.v1 + "/balance/refund", headers=bearer(token)) as r:
        assert r.status == 200, await r.text()
        refund = await r.json()
    key_id = await node.app[NODE].auth.key_id(token)
    await node.assert_books_balance(key_id)
    assert refund["msats"] == (100 - inputs) * 1000  # the whole balance left the key
    assert refund["amount"] < 100 - inputs  # and the refund swap's input fee came out of it
    assert await wallet.areceive(refund["token"]) == refund["amount"] - len(
        decode_token(refund["token"]).proofs
    )


async def test_each_key_stays_with_its_mint(
    two_mint_node: NodeHandle,
    wallet: TestWallet,
    mint_url: str,
    fee_mint: NutshellMint,
    http: aiohttp.ClientSession,
):
    node = two_mint_node
    plain = await wallet.asend(mint_url, 20)
    async with http.post(node.v1 + "/balance/create", json={"cashu_token": plain}) as r:
        sk = (await r.json())["api_key"]
    other = await wallet.asend(fee_mint.url, 20)
    async with http.post(node.v1 + "/balance/topup", json={"cashu_token": other}, headers=bearer(sk)) as r:
        assert r.status == 400
        assert (await r.json())["error"]["details"]["mint"] == mint_url
    assert set(await wallet.acheck(other)) == {"UNSPENT"}  # refused before anything was swapped
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer(sk)
    ) as r:
        assert r.status == 200


async def test_a_refund_never_spends_other_users_ecash_on_fees(
    two_mint_node: NodeHandle, wallet: TestWallet, fee_mint: NutshellMint, http: aiohttp.ClientSession
):
    """With several keys on one mint, the node's proofs are shared: the fee must come from the refund."""
    from routstr.storage import wallet_store

    node = two_mint_node
    a, b = await wallet.asend(fee_mint.url, 64), await wallet.asend(fee_mint.url, 7)
    for t in (a, b):
        async with http.get(node.v1 + "/balance/info", headers=bearer(t)) as r:
            assert r.status == 200
    async with node.db.read() as conn:
        held_before = await wallet_store.wallet_total(conn, fee_mint.url, "sat")
    b_key = await node.app[NODE].auth.key_id(b)
    b_balance = (await node.key_row(b_key)).balance_msat // 1000
    async with http.post(node.v1 + "/balance/refund", headers=bearer(b)) as r:
        refund = await r.json()
    async with node.db.read() as conn:
        held_after = await wallet_store.wallet_total(conn, fee_mint.url, "sat")
    # the node's eCash went down by exactly the refunded balance: the swap fee was inside it
    assert held_before - held_after == b_balance
    assert refund["amount"] < b_balance
    a_key = await node.app[NODE].auth.key_id(a)
    total_owed = (await node.key_row(a_key)).balance_msat + (await node.key_row(b_key)).balance_msat
    assert held_after * 1000 >= total_owed
