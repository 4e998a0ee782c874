"""Refunds over Lightning: a key's balance melted at its mint (NUT-05) to a bolt11, a Lightning
address or an LNURL, with the fee reserve and its change accounted, and lost answers reconciled.

Invoices come from a "payee" Nutshell mint whose FakeWallet never marks them paid by itself
(``FAKEWALLET_BRR=False``), behind a local LNURL-pay server; the node's mint "pays" them (FakeWallet).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import bech32
import pytest
import pytest_asyncio
from aiohttp import web

from routstr.cashu.mint_client import MintClient
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage import wallet_store
from routstr.storage.books import books
from routstr.wallet.recovery import recover_pending
from tests.conftest import NodeHandle, Upstream, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")
FAKEWALLET_FEE = 1  # the routing fee FakeWallet reports for a payment
# the LNURL server below is on plain http at 127.0.0.1: refused unless the operator allows both
LOCAL_LNURL = {"LNURL_ALLOW_HTTP": "true", "LNURL_ALLOW_PRIVATE": "true"}


@pytest.fixture(scope="module")
def payee(nutshell_python: Path) -> Iterator[NutshellMint]:
    with NutshellMint("ln-payee-node", extra_env={"FAKEWALLET_BRR": "False"}) as m:
        yield m


async def bolt11(payee: NutshellMint, sats: int) -> str:
    async with aiohttp.ClientSession() as s:
        return (await MintClient(payee.url, s).mint_quote(sats)).bolt11


@pytest_asyncio.fixture(loop_scope="session")
async def lnurl_server(payee: NutshellMint) -> AsyncIterator[dict[str, Any]]:
    """A LNURL-pay server for ``alice``: invoices of the payee mint for whatever amount is asked."""
    seen: dict[str, Any] = {"amounts": []}

    async def well_known(request: web.Request) -> web.Response:
        base = f"http://{request.host}"
        return web.json_response(
            {
                "tag": "payRequest",
                "callback": base + "/cb",
                "minSendable": 1000,
                "maxSendable": 10**9,
                "metadata": "[]",
            }
        )

    async def callback(request: web.Request) -> web.Response:
        msat = int(request.query["amount"])
        seen["amounts"].append(msat)
        return web.json_response({"pr": await bolt11(payee, msat // 1000), "routes": []})

    app = web.Application()
    app.router.add_get("/.well-known/lnurlp/alice", well_known)
    app.router.add_get("/cb", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    seen["host"] = f"127.0.0.1:{runner.addresses[0][1]}"
    yield seen
    await runner.cleanup()


async def funded_key(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession, sats: int
) -> dict[str, str]:
    token = await wallet.asend(mint_url, sats)
    async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
        return {"Authorization": f"Bearer {(await r.json())['api_key']}"}


async def test_refund_to_a_bolt11_accounts_the_fee_reserve(
    node: NodeHandle, wallet: TestWallet, mint_url: str, payee: NutshellMint, http: aiohttp.ClientSession
):
    key = await funded_key(node, wallet, mint_url, http, 500)
    async with http.post(
        node.v1 + "/balance/refund", json={"bolt11": await bolt11(payee, 100)}, headers=key
    ) as r:
        assert r.status == 200, await r.text()
        out = await r.json()
    assert out["state"] == "paid" and out["amount_sats"] == 100 and out["fee_sats"] == FAKEWALLET_FEE
    assert out["preimage"] and out["balance"] == (500 - 100 - FAKEWALLET_FEE) * 1000
    key_id = await node.app[NODE].auth.key_id(key["Authorization"][7:])
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == out["balance"]
    sums = await node.ledger_sums(key_id)
    assert sums["refund"] - sums.get("credit", 0) + 500_000 == 101_000  # debit, less the reserve given back


async def test_refund_to_a_lightning_address_and_to_an_lnurl(
    backend: str,
    wallet: TestWallet,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path: Path,
    lnurl_server: dict[str, Any],
):
    async with running_node(backend, mint_url, fake_upstream, tmp_path, **LOCAL_LNURL) as node:
        async with aiohttp.ClientSession() as http:
            key = await funded_key(node, wallet, mint_url, http, 300)
            address = "alice@" + lnurl_server["host"]
            async with http.post(node.v1 + "/balance/refund", headers={**key, "Refund-LNURL": address}) as r:
                assert r.status == 200, await r.text()
                out = await r.json()
            # the whole balance, less the mint's fee reserve (1%, at least 2 sat): re-quoted once to fit
            assert lnurl_server["amounts"] == [300_000, 297_000]
            assert out["amount_sats"] == 297 and out["fee_sats"] == FAKEWALLET_FEE
            assert out["balance"] == 2000  # the unused part of the 3 sat reserve came back
            key2 = await funded_key(node, wallet, mint_url, http, 50)
            url = f"http://{lnurl_server['host']}/.well-known/lnurlp/alice"
            lnurl = bech32.bech32_encode("lnurl", bech32.convertbits(url.encode(), 8, 5)).upper()
            async with http.post(node.v1 + "/balance/refund", json={"lnurl": lnurl}, headers=key2) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["amount_sats"] == 48
            async with node.db.read() as conn:
                [b] = await books(conn)
            assert b.owed_msat == 2000 + 1000 and b.pending_swaps == 0  # the unused fee reserves


async def test_a_failed_payment_leaves_the_balance_and_a_pending_one_is_reconciled(
    backend: str,
    nutshell_python: Path,
    wallet: TestWallet,
    payee: NutshellMint,
    fake_upstream: Upstream,
    tmp_path: Path,
):
    with NutshellMint("ln-out") as mint:
        async with (
            running_node(backend, mint.url, fake_upstream, tmp_path) as node,
            aiohttp.ClientSession() as http,
        ):
            key = await funded_key(node, wallet, mint.url, http, 200)
            mint.stop()
            mint.extra_env.update(FAKEWALLET_PAY_INVOICE_STATE="FAILED", FAKEWALLET_PAYMENT_STATE="FAILED")
            mint.start()
            async with http.post(
                node.v1 + "/balance/refund", json={"bolt11": await bolt11(payee, 50)}, headers=key
            ) as r:
                assert r.status == 503
            async with http.get(node.v1 + "/balance/info", headers=key) as r:
                assert (await r.json())["balance"] == 200_000  # nothing left the key
            mint.stop()
            mint.extra_env.update(FAKEWALLET_PAY_INVOICE_STATE="PENDING", FAKEWALLET_PAYMENT_STATE="SETTLED")
            mint.start()
            async with http.post(
                node.v1 + "/balance/refund", json={"bolt11": await bolt11(payee, 50)}, headers=key
            ) as r:
                assert r.status == 202
                assert (await r.json())["state"] == "pending"
            async with node.db.read() as conn:
                [b] = await books(conn)
                [melt] = await wallet_store.pending_swaps(conn)
            assert b.pending_refunds == 50 and melt.kind == "melt"
            assert await recover_pending(node.db, node.app[NODE].mints, min_age_s=0) == {"done": 1}
            async with http.get(node.v1 + "/balance/info", headers=key) as r:
                # settled later with no routing fee: the whole fee reserve came back
                assert (await r.json())["balance"] == (200 - 50) * 1000
            await node.assert_books_balance(await node.app[NODE].auth.key_id(key["Authorization"][7:]))


async def test_an_expired_key_pays_the_rest_to_its_refund_address(
    backend: str,
    wallet: TestWallet,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path: Path,
    lnurl_server: dict[str, Any],
):
    import time

    from routstr.wallet.expiry import pay_out_expired

    async with running_node(backend, mint_url, fake_upstream, tmp_path, **LOCAL_LNURL) as node:
        async with aiohttp.ClientSession() as http:
            terms = {
                "Refund-LNURL": "alice@" + lnurl_server["host"],
                "Key-Expiry-Time": str(int(time.time()) + 2),
            }
            token = await wallet.asend(mint_url, 120)
            async with http.post(
                node.v1 + "/balance/create", json={"cashu_token": token}, headers=terms
            ) as r:
                key = {"Authorization": f"Bearer {(await r.json())['api_key']}"}
            no_address = await funded_key(node, wallet, mint_url, http, 40)
            async with http.get(
                node.v1 + "/balance/info", headers={**no_address, "Key-Expiry-Time": "1"}
            ) as r:
                assert r.status == 200
            payouts = node.app[NODE].payouts
            assert await pay_out_expired(node.db, payouts) == {"kept": 1}  # the first has 2 s to go
            before = len(lnurl_server["amounts"])
            await asyncio.sleep(2.1)
            assert await pay_out_expired(node.db, payouts) == {"paid": 1}
            assert lnurl_server["amounts"][before:] == [120_000, 118_000]  # re-quoted for the 2 sat reserve
            async with http.get(node.v1 + "/balance/info", headers=key) as r:
                assert (await r.json())["balance"] == 1000  # the unused half of the reserve
            async with http.get(node.v1 + "/balance/info", headers=no_address) as r:
                assert (await r.json())["balance"] == 40_000  # no address: it stays, claimable
            assert await pay_out_expired(node.db, payouts) == {}  # each expiry acts once


async def test_earnings_go_out_over_lightning_and_users_money_stays(
    backend: str,
    wallet: TestWallet,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path: Path,
    lnurl_server: dict[str, Any],
):
    from routstr.wallet.audit import audit
    from routstr.wallet.withdraw import WouldTouchUserMoney
    from routstr.wallet.withdraw_lightning import auto_payout, withdraw_lightning

    async with running_node(backend, mint_url, fake_upstream, tmp_path, **LOCAL_LNURL) as node:
        async with aiohttp.ClientSession() as http:
            key = await funded_key(node, wallet, mint_url, http, 400)
            body = {
                "model": "gpt-4o-mini",
                "max_tokens": 500,
                "messages": [{"role": "user", "content": "y " * 3000}],
            }
            for _ in range(6):
                async with http.post(node.v1 + "/chat/completions", json=body, headers=key) as r:
                    assert r.status == 200
            async with http.get(node.v1 + "/balance/info", headers=key) as r:
                user = await r.json()
        earned = user["total_spent"] // 1000
        assert earned >= 10
        payouts, address = node.app[NODE].payouts, "alice@" + lnurl_server["host"]
        with pytest.raises(WouldTouchUserMoney):
            await withdraw_lightning(node.db, payouts, mint_url, address, earned + 1)
        assert await auto_payout(node.db, payouts, mint_url, address, threshold_sats=earned + 1) is None
        before = len(lnurl_server["amounts"])
        paid = await auto_payout(node.db, payouts, mint_url, address, threshold_sats=earned)
        assert paid is not None and paid.state == "paid"
        assert paid.amount + 2 <= earned and lnurl_server["amounts"][-1] == paid.amount * 1000
        assert len(lnurl_server["amounts"]) > before
        report = await audit(node.db, node.app[NODE].mints)
        assert report.ok, report.problems
        user_key = await node.app[NODE].auth.key_id(key["Authorization"][7:])
        assert (await node.key_row(user_key)).balance_msat == user["balance"]  # untouched
