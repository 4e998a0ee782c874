"""Tokens of a mint the node does not trust, converted into its primary mint over Lightning (opt-in).

Two real Nutshell mints: the node trusts ``mint`` (the primary); ``fee_mint`` (1 sat input fee per
proof) is the foreign one. Its FakeWallet "pays" the primary's invoice when the node melts there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from routstr.cashu.errors import MintUnavailable
from routstr.cashu.mint_client import MintClient
from routstr.cashu.tokens import decode_token
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage import wallet_store
from routstr.storage.books import books
from routstr.wallet.recovery import recover_pending
from tests.conftest import NodeHandle, Upstream, _backends, chat_body, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")

FOREIGN = {
    "FOREIGN_MINT_MAX_SATS": "200",
    "FOREIGN_MINT_DAILY_SATS": "350",
    "FOREIGN_MINT_ALLOW_HTTP": "true",
    "FOREIGN_MINT_ALLOW_PRIVATE": "true",  # the test mints are on 127.0.0.1
}


@pytest_asyncio.fixture(loop_scope="session", params=_backends())
async def converting_node(
    request: pytest.FixtureRequest, mint_url: str, fake_upstream: Upstream, tmp_path: Path
) -> AsyncIterator[NodeHandle]:
    async with running_node(request.param, mint_url, fake_upstream, tmp_path, **FOREIGN) as n:
        yield n


async def test_a_foreign_token_pays_and_its_change_is_primary_mint_ecash(
    converting_node: NodeHandle,
    wallet: TestWallet,
    mint_url: str,
    fee_mint: NutshellMint,
    http: aiohttp.ClientSession,
):
    node = converting_node
    token = await wallet.asend(fee_mint.url, 100)
    input_fee = len(decode_token(token).proofs)  # 1 sat per proof at that mint
    headers = {"X-Cashu": token}
    async with http.post(node.v1 + "/chat/completions", json=chat_body(max_tokens=20), headers=headers) as r:
        assert r.status == 200, await r.text()
        cost = (await r.json())["usage"]["cost"]
    assert set(await wallet.acheck(token)) == {"SPENT"}  # melted at the foreign mint
    change = decode_token(cost["x_cashu"])
    assert change.mint == mint_url  # the change is eCash of the node's own mint
    assert await wallet.areceive(cost["x_cashu"]) == cost["change"]
    async with node.db.read() as conn:
        assert await wallet_store.pending_swaps(conn) == []
    # what the user paid: the request, the foreign mint's input fee and its Lightning fee reserve (2 sat)
    assert cost["msats"] // 1000 + cost["change"] + input_fee + 2 == 100
    async with node.db.read() as conn:
        [b] = await books(conn)
    assert (b.mint_url, b.owed_msat, b.surplus_msat) == (mint_url, 0, cost["msats"])


async def test_caps_per_token_and_per_day_leave_the_token_untouched(
    converting_node: NodeHandle, wallet: TestWallet, fee_mint: NutshellMint, http: aiohttp.ClientSession
):
    node = converting_node
    big = await wallet.asend(fee_mint.url, 201)
    async with http.post(node.v1 + "/chat/completions", json=chat_body(), headers={"X-Cashu": big}) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "mint_not_accepted"
    assert set(await wallet.acheck(big)) == {"UNSPENT"}
    statuses = []
    for _ in range(2):  # 2 x 150 sat fit the day's 350; a third does not
        token = await wallet.asend(fee_mint.url, 150)
        async with http.get(node.v1 + "/balance/info", headers={"Authorization": f"Bearer {token}"}) as r:
            statuses.append(r.status)
    assert statuses == [200, 200]
    third = await wallet.asend(fee_mint.url, 150)
    async with http.get(node.v1 + "/balance/info", headers={"Authorization": f"Bearer {third}"}) as r:
        assert r.status == 503 and (await r.json())["error"]["code"] == "foreign_mint_limit"
    assert set(await wallet.acheck(third)) == {"UNSPENT"}


async def test_foreign_mints_are_refused_by_default(
    node: NodeHandle, wallet: TestWallet, fee_mint: NutshellMint, http: aiohttp.ClientSession
):
    token = await wallet.asend(fee_mint.url, 20)
    async with http.get(node.v1 + "/balance/info", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "mint_not_accepted"


async def test_a_conversion_cut_after_the_melt_is_finished_by_recovery(
    backend: str,
    wallet: TestWallet,
    mint_url: str,
    fee_mint: NutshellMint,
    fake_upstream: Upstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """The foreign mint paid our invoice, then the primary mint could not be reached: the record made
    before the melt lets recovery mint the value later; the key is credited once."""
    async with running_node(backend, mint_url, fake_upstream, tmp_path, **FOREIGN) as node:
        token = await wallet.asend(fee_mint.url, 60)
        real_mint = MintClient.mint

        async def unreachable(*_: Any, **__: Any) -> Any:
            raise MintUnavailable("connect: refused", maybe_processed=False)

        monkeypatch.setattr(MintClient, "mint", unreachable)
        bearer = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(node.v1 + "/balance/info", headers=bearer) as r:
                assert r.status == 503 and (await r.json())["error"]["code"] == "conversion_pending"
            assert set(await wallet.acheck(token)) == {"SPENT"}
            monkeypatch.setattr(MintClient, "mint", real_mint)
            assert await recover_pending(node.db, node.app[NODE].mints, min_age_s=0) == {"done": 1}
            async with http.get(node.v1 + "/balance/info", headers=bearer) as r:
                assert r.status == 200
                info = await r.json()
        fee = len(decode_token(token).proofs) + 2
        assert info["balance"] == (60 - fee) * 1000 and info["mint"] == mint_url
        key_id = await node.app[NODE].auth.key_id(token)
        assert (await node.ledger_sums(key_id))["credit"] == (60 - fee) * 1000
        await node.assert_books_balance(key_id)
