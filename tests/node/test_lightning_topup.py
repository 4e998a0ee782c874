"""Lightning top-ups through the mint's NUT-04 quotes: an invoice creates or credits a key, once.

The shared test mint's FakeWallet marks its invoices paid at the first look. The pending → paid test
uses a mint restarted with ``FAKEWALLET_BRR=False`` (invoices stay unpaid) and pays the invoice for
real: eCash of that mint melted there (NUT-05), which the mint settles internally.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select, update

from routstr.cashu.mint_client import MintClient
from routstr.cashu.tokens import decode_token, resolve_short_keyset_ids
from routstr.core.keys import key_hash
from routstr.core.sealed import seal, unseal
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage import accounts
from routstr.storage.schema import invoices
from routstr.wallet.lightning_in import TOPUP_KEY_PURPOSE
from tests.conftest import NodeHandle, Upstream, chat_body, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def invoice(http: aiohttp.ClientSession, node: NodeHandle, amount: int, **kw: Any) -> dict[str, Any]:
    headers = kw.pop("headers", None)
    async with http.post(
        node.url + "/lightning/invoice", json={"amount_sats": amount, **kw}, headers=headers
    ) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def status(http: aiohttp.ClientSession, node: NodeHandle, invoice_id: str) -> dict[str, Any]:
    async with http.get(node.v1 + f"/balance/lightning/invoice/{invoice_id}/status") as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def test_a_paid_invoice_creates_a_key_once_however_often_polled(
    node: NodeHandle, http: aiohttp.ClientSession
):
    inv = await invoice(http, node, 300, purpose="create")
    assert inv["bolt11"].startswith("ln") and inv["amount_sats"] == 300 and inv["expires_at"]
    polls = await asyncio.gather(*(status(http, node, inv["invoice_id"]) for _ in range(6)))
    assert {p["state"] for p in polls} == {"paid"}
    keys = {p["api_key"] for p in polls}
    assert len(keys) == 1
    sk = keys.pop()
    async with http.get(node.v1 + "/balance/info", headers={"Authorization": f"Bearer {sk}"}) as r:
        info = await r.json()
    assert info["balance"] == 300_000
    key_id = await node.app[NODE].auth.key_id(sk)
    assert (await node.ledger_sums(key_id))["credit"] == 300_000  # credited once
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers={"Authorization": f"Bearer {sk}"}
    ) as r:
        assert r.status == 200


async def test_only_the_invoice_id_is_a_status_handle(node: NodeHandle, http: aiohttp.ClientSession):
    """The mint's quote id, the bolt11 or its payment hash name no invoice here (the bolt11 finds it
    through POST /lightning/recover only: tests/node/test_lightning_compat.py)."""
    inv = await invoice(http, node, 50, purpose="create")
    quote_id = await _quote_id(node, inv["invoice_id"])
    for guess in (quote_id, inv["bolt11"], inv["payment_hash"], inv["invoice_id"].upper()):
        async with http.get(node.url + f"/lightning/invoice/{guess}/status") as r:
            assert r.status == 404
            assert (await r.json())["error"]["type"] == "not_found"


async def _quote_id(node: NodeHandle, invoice_id: str) -> str:
    from routstr.storage import invoice_store

    async with node.db.read() as conn:
        row = await invoice_store.invoice_by_id(conn, invoice_id)
    assert row is not None
    return row.quote_id


async def test_a_topup_invoice_credits_the_key(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 20)
    async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
        sk = (await r.json())["api_key"]
    bearer = {"Authorization": f"Bearer {sk}"}
    async with http.post(node.url + "/lightning/invoice", json={"amount_sats": 80, "purpose": "topup"}) as r:
        assert r.status == 401  # a top-up needs the key it credits
    inv = await invoice(http, node, 80, purpose="topup", headers=bearer)
    st = await status(http, node, inv["invoice_id"])
    # the key it was made with (routstr-sdk requires an api_key on every paid status)
    assert st["state"] == "paid" and st["api_key"] == sk and st["balance"] == 100_000
    await node.assert_books_balance(await node.app[NODE].auth.key_id(sk))


async def test_bad_amounts_are_refused(node: NodeHandle, http: aiohttp.ClientSession):
    for amount in (0, -5, "100", 10**12):
        async with http.post(node.url + "/lightning/invoice", json={"amount_sats": amount}) as r:
            assert r.status == 400
            assert (await r.json())["error"]["details"]["param"] == "amount_sats"


async def test_the_watcher_settles_an_invoice_nobody_polls_and_pending_means_unpaid(
    backend: str, nutshell_python: Path, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
):
    with NutshellMint("ln-topup") as mint:
        funds = await wallet.asend(mint.url, 200)  # eCash to pay with, while the mint still "brrs"
        mint.stop()
        mint.extra_env["FAKEWALLET_BRR"] = "False"  # from now on its invoices wait to be paid
        mint.start()
        async with (
            running_node(backend, mint.url, fake_upstream, tmp_path, INVOICE_WATCH_SECONDS="0.2") as node,
            aiohttp.ClientSession() as http,
        ):
            inv = await invoice(http, node, 100, purpose="create")
            await asyncio.sleep(0.5)  # the watcher looked at least twice
            st = await status(http, node, inv["invoice_id"])
            assert st["state"] == "pending" and "api_key" not in st
            # pay it: the user's eCash of that mint, melted there for this invoice
            async with aiohttp.ClientSession() as s:
                client = MintClient(mint.url, s)
                quote = await client.melt_quote(inv["bolt11"])
                ids = [k.id for k in await client.keysets()]
                proofs = resolve_short_keyset_ids(decode_token(funds).proofs, ids)  # V4 carries short ids
                paid = await client.melt(quote.quote, proofs)
            assert paid.is_paid
            secret = node.app[NODE].auth.secret
            sk = node.app[NODE].invoices.created_key(inv["invoice_id"])
            row = None
            for _ in range(100):  # nobody polls: the watcher must settle it
                async with node.db.read() as conn:
                    row = await accounts.key_by_hash(conn, key_hash(secret, sk))
                if row is not None and row.balance_msat:
                    break
                await asyncio.sleep(0.05)
            assert row is not None and row.balance_msat == 100_000
            st = await status(http, node, inv["invoice_id"])
            assert st["state"] == "paid" and st["api_key"] == sk
            assert (await node.ledger_sums(row.id))["credit"] == 100_000


async def _invoice_row(node: NodeHandle, invoice_id: str) -> dict[str, Any]:
    async with node.db.read() as conn:
        q = select(invoices).where(invoices.c.id == invoice_id)
        return dict((await conn.execute(q)).mappings().one())


async def _info(http: aiohttp.ClientSession, node: NodeHandle, key: str) -> dict[str, Any]:
    async with http.get(node.v1 + "/balance/info", headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def _recover(http: aiohttp.ClientSession, node: NodeHandle, bolt11: str) -> dict[str, Any]:
    async with http.post(node.url + "/lightning/recover", json={"bolt11": bolt11}) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def test_a_token_bearers_topup_hands_back_its_balances_sk_key_sealed_and_only_by_id(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 20)
    inv = await invoice(http, node, 70, purpose="topup", headers={"Authorization": f"Bearer {token}"})
    st = await status(http, node, inv["invoice_id"])
    alias = st["api_key"]
    assert st["state"] == "paid" and alias.startswith("sk-") and st["balance"] == 90_000
    # the sk- key authenticates to the token's balance (asked before the token's own balance info,
    # which hands out the same key)
    assert (await _info(http, node, alias))["balance"] == 90_000
    auth = node.app[NODE].auth
    assert await auth.key_id(alias) == await auth.key_id(token)
    assert (await _info(http, node, token))["api_key"] == alias
    assert (await status(http, node, inv["invoice_id"]))["api_key"] == alias  # the same, credited once
    assert (await node.ledger_sums(await auth.key_id(token)))["credit"] == 90_000
    # the bolt11 is the payer's too: recovering by it gives neither the key nor its balance
    rec = await _recover(http, node, inv["bolt11"])
    assert rec["status"] == "paid" and "api_key" not in rec and "balance" not in rec
    # stored sealed: neither the sk- key nor the token is in the row
    row = await _invoice_row(node, inv["invoice_id"])
    stored = repr(row)
    assert alias not in stored and alias[3:] not in stored and token not in stored
    assert unseal(auth.secret, TOPUP_KEY_PURPOSE, row["api_key_sealed"]) == alias


async def test_an_sk_keys_topup_recover_withholds_and_a_seal_that_does_not_open_is_no_error(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 20)
    async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
        sk = (await r.json())["api_key"]
    inv = await invoice(http, node, 25, purpose="topup", api_key=sk)  # in the body, as Core's UI sends it
    rec = await _recover(http, node, inv["bolt11"])  # the payer asks first: settled, nothing handed out
    assert rec["status"] == "paid" and "api_key" not in rec and "balance" not in rec
    assert (await status(http, node, inv["invoice_id"]))["api_key"] == sk
    row = await _invoice_row(node, inv["invoice_id"])
    assert sk not in repr(row) and sk[3:] not in repr(row)
    secret = node.app[NODE].auth.secret
    sealed = str(row["api_key_sealed"])
    damaged = sealed[:-1] + ("B" if sealed[-1] == "A" else "A")
    # sealed under another node secret, for another purpose, or damaged: the status has no key (and
    # is no 500); the top-up stays credited
    for other in (
        seal(os.urandom(32), TOPUP_KEY_PURPOSE, sk),
        seal(secret, "webhook-secret", sk),
        damaged,
        "not sealed",
    ):
        async with node.db.write() as conn:
            q = update(invoices).where(invoices.c.id == inv["invoice_id"]).values(api_key_sealed=other)
            await conn.execute(q)
        st = await status(http, node, inv["invoice_id"])
        assert st["status"] == "paid" and "api_key" not in st and st["balance"] == 45_000, other
    assert (await _info(http, node, sk))["balance"] == 45_000


async def test_a_child_keys_topup_hands_back_the_childs_own_key(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 20)
    async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
        parent = (await r.json())["api_key"]
    async with http.post(
        node.v1 + "/balance/child-key", json={}, headers={"Authorization": f"Bearer {parent}"}
    ) as r:
        assert r.status == 200, await r.text()
        (child,) = (await r.json())["api_keys"]
    before = (await _info(http, node, parent))["balance"]
    inv = await invoice(http, node, 15, purpose="topup", headers={"Authorization": f"Bearer {child}"})
    st = await status(http, node, inv["invoice_id"])
    assert st["status"] == "paid" and st["api_key"] == child  # what the client holds, not its parent
    assert (await _info(http, node, parent))["balance"] == before + 15_000  # the balance it spends
