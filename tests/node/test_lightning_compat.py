"""Routstr clients' Lightning calls, replayed field by field (issue 15; ../shared/spec/routstr-clients.md).

routstr-sdk ``LightningPayments`` creates an invoice, needs its ``payment_hash`` and polls the status
until ``status == "paid"``; Routstr Core's own UI creates top-ups with ``api_key`` in the body (no
header), expects 200, and finds an invoice again with ``POST /lightning/recover {bolt11}``. Each route
is called under each of its three prefixes. The payment hash is checked against the ``bolt11``
package Nutshell itself uses (in the test mint's venv), not only against the node's own decoder.

The shared test mint's FakeWallet pays its invoices at the first look; the pending → paid and
expired test runs a mint whose invoices wait (``FAKEWALLET_BRR=False``) and pays one by melting eCash
of that mint there, as tests/node/test_lightning_topup.py does.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import bech32
import pytest
from sqlalchemy import update

from routstr.api.lightning import PREFIXES
from routstr.cashu.mint_client import MintClient
from routstr.cashu.tokens import decode_token, resolve_short_keyset_ids
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage.accounts import now_ms
from routstr.storage.schema import invoices
from tests.conftest import NodeHandle, Upstream, chat_body, running_node
from tests.core.test_bolt11 import SPEC

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATED = {"invoice_id", "bolt11", "amount_sats", "expires_at", "payment_hash", "purpose", "created_at"}
STATUS = {
    "invoice_id",
    "status",
    "state",
    "amount_sats",
    "purpose",
    "payment_hash",
    "created_at",
    "paid_at",
    "expires_at",
}
MAX_POLLS = 200  # the SDK polls every few seconds until paid; here every 50 ms, a bounded number of times


async def reference_payment_hash(nutshell_python: Path, invoice: str) -> str:
    """The payment hash as the ``bolt11`` package (lnbits; Nutshell's own) reads it."""
    proc = await asyncio.create_subprocess_exec(
        str(nutshell_python),
        "-c",
        "import bolt11, sys; print(bolt11.decode(sys.argv[1]).payment_hash)",
        invoice,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode().strip()


async def create(
    http: aiohttp.ClientSession, base: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    before = int(time.time())
    async with http.post(base + "/invoice", json=body, headers=headers) as r:
        assert r.status == 200, await r.text()  # Routstr Core's UI requires 200
        inv = dict(await r.json())
    assert set(inv) == CREATED
    assert len(inv["invoice_id"]) == 32 and inv["bolt11"].startswith("lnbc")
    assert inv["amount_sats"] == body["amount_sats"] and inv["purpose"] == body.get("purpose", "create")
    assert before <= inv["created_at"] <= int(time.time()) < inv["expires_at"]
    assert len(inv["payment_hash"]) == 64 and int(inv["payment_hash"], 16) >= 0
    return inv


async def status(http: aiohttp.ClientSession, base: str, invoice_id: str) -> dict[str, Any]:
    async with http.get(base + f"/invoice/{invoice_id}/status") as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def recover(http: aiohttp.ClientSession, base: str, invoice: str) -> dict[str, Any]:
    async with http.post(base + "/recover", json={"bolt11": invoice}) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def poll_until_paid(http: aiohttp.ClientSession, base: str, invoice_id: str) -> dict[str, Any]:
    """What LightningPayments does: ask until ``status === "paid"``."""
    for _ in range(MAX_POLLS):
        st = await status(http, base, invoice_id)
        if st["status"] == "paid":
            return st
        assert st["status"] == "pending", st
        await asyncio.sleep(0.05)
    raise AssertionError(f"invoice {invoice_id} still {st['status']} after {MAX_POLLS} polls")


def assert_status(st: dict[str, Any], inv: dict[str, Any], state: str) -> None:
    """The fields every status answer has, in Routstr Core's shape (times in unix seconds)."""
    assert st["status"] == st["state"] == state
    assert st["invoice_id"] == inv["invoice_id"] and st["amount_sats"] == inv["amount_sats"]
    assert st["payment_hash"] == inv["payment_hash"] and st["purpose"] == inv["purpose"]
    assert st["created_at"] == inv["created_at"] and st["expires_at"] == inv["expires_at"]
    if state == "paid":
        assert inv["created_at"] <= st["paid_at"] <= int(time.time())
    else:
        assert st["paid_at"] is None and "api_key" not in st and "balance" not in st


def assert_envelope(body: dict[str, Any], type_: str, param: str | None = None) -> None:
    err = body["error"]
    assert err["type"] == type_ and isinstance(err["message"], str) and isinstance(err["code"], str)
    assert isinstance(err["details"], dict)
    if param is not None:
        assert err["details"]["param"] == param


async def sk_key(http: aiohttp.ClientSession, node: NodeHandle, wallet: TestWallet, mint_url: str) -> str:
    token = await wallet.asend(mint_url, 20)
    async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["api_key"])


async def test_sdk_create_then_poll_until_paid_under_every_prefix(
    node: NodeHandle, http: aiohttp.ClientSession, nutshell_python: Path
):
    for n, prefix in enumerate(PREFIXES):
        base, amount = node.url + prefix, 100 + n
        inv = await create(http, base, {"amount_sats": amount, "purpose": "create"})
        assert inv["payment_hash"] == await reference_payment_hash(nutshell_python, inv["bolt11"])
        st = await poll_until_paid(http, base, inv["invoice_id"])
        assert set(st) == STATUS | {"api_key", "balance"}
        assert_status(st, inv, "paid")
        sk = st["api_key"]
        assert sk == node.app[NODE].invoices.created_key(inv["invoice_id"])
        assert st["balance"] == amount * 1000
        assert await status(http, base, inv["invoice_id"]) == st  # asked again: the same, credited once
        headers = {"Authorization": f"Bearer {sk}"}
        async with http.get(node.v1 + "/balance/info", headers=headers) as r:
            assert (await r.json())["balance"] == amount * 1000
        key_id = await node.app[NODE].auth.key_id(sk)
        assert (await node.ledger_sums(key_id))["credit"] == amount * 1000
        await node.assert_books_balance(key_id)
    async with http.post(node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=headers) as r:
        assert r.status == 200


async def test_ui_topup_with_the_key_in_the_body(
    node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint_url: str
):
    sk = await sk_key(http, node, wallet, mint_url)
    key_id = await node.app[NODE].auth.key_id(sk)
    balance = 20_000
    for n, prefix in enumerate(PREFIXES):
        base, amount = node.url + prefix, 30 + n
        inv = await create(http, base, {"amount_sats": amount, "purpose": "topup", "api_key": sk})
        st = await poll_until_paid(http, base, inv["invoice_id"])
        balance += amount * 1000
        # api_key: the key it was made with (routstr-sdk's validateStatus requires one when paid)
        assert set(st) == STATUS | {"api_key", "balance"}
        assert_status(st, inv, "paid")
        assert st["api_key"] == sk and st["balance"] == balance
    # the same key in the header and the body is fine too; x-api-key counts as the header
    headers = {"x-api-key": sk}
    inv = await create(
        http, node.url + "/lightning", {"amount_sats": 7, "purpose": "topup", "api_key": sk}, headers
    )
    assert (await poll_until_paid(http, node.url + "/lightning", inv["invoice_id"]))[
        "balance"
    ] == balance + 7000
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == balance + 7000
    assert (await node.ledger_sums(key_id))["credit"] == balance + 7000


async def test_recover_by_the_whole_bolt11(
    node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint_url: str
):
    for n, prefix in enumerate(PREFIXES):
        base = node.url + prefix
        inv = await create(http, base, {"amount_sats": 60 + n, "purpose": "create"})
        # the invoice_id was lost: the bolt11 (as a QR code or a link carries it) leads to the key
        st = await recover(http, base, "lightning:" + inv["bolt11"].upper())
        assert set(st) == STATUS | {"api_key", "balance"}
        assert_status(st, inv, "paid")
        assert st["api_key"] == node.app[NODE].invoices.created_key(inv["invoice_id"])
        assert st["balance"] == (60 + n) * 1000
        assert await status(http, base, inv["invoice_id"]) == st
        assert await recover(http, base, inv["bolt11"]) == st
    # a top-up's payer may be someone else (a custodial wallet): neither the key nor its balance,
    # which its status by invoice_id (the creator's handle) has
    sk = await sk_key(http, node, wallet, mint_url)
    base = node.url + "/lightning"
    inv = await create(http, base, {"amount_sats": 40, "purpose": "topup"}, {"Authorization": f"Bearer {sk}"})
    st = await recover(http, base, inv["bolt11"])
    assert set(st) == STATUS
    assert_status(st, inv, "paid")
    by_id = await status(http, base, inv["invoice_id"])
    assert by_id["api_key"] == sk and by_id["balance"] == 60_000
    assert await recover(http, base, inv["bolt11"]) == st  # asked again after: still withheld
    async with http.get(node.v1 + "/balance/info", headers={"Authorization": f"Bearer {sk}"}) as r:
        assert (await r.json())["balance"] == 60_000
    # the payment hash alone (routing nodes see it) is not enough: same hash, another signature
    hrp, words = bech32.bech32_decode(inv["bolt11"])
    assert hrp is not None and words is not None
    words[-2] ^= 1
    forged = bech32.bech32_encode(hrp, words)
    async with http.post(base + "/recover", json={"bolt11": forged}) as r:
        assert r.status == 404
        assert_envelope(await r.json(), "not_found")


async def test_bad_input_gets_a_4xx_envelope(
    node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint_url: str
):
    sk = await sk_key(http, node, wallet, mint_url)
    base = node.url + "/lightning"
    cases: list[tuple[str, str, Any, dict[str, str] | None, int, str, str | None]] = [
        ("POST", "/recover", {}, None, 400, "invalid_request", "bolt11"),
        ("POST", "/recover", {"bolt11": 5}, None, 400, "invalid_request", "bolt11"),
        ("POST", "/recover", {"bolt11": "  "}, None, 400, "invalid_request", "bolt11"),
        ("POST", "/recover", {"bolt11": "garbage"}, None, 400, "invalid_request", "bolt11"),
        ("POST", "/recover", {"bolt11": "lnbc1\x00" + "q" * 200}, None, 400, "invalid_request", "bolt11"),
        ("POST", "/recover", {"bolt11": "ln" * 20_000}, None, 400, "invalid_request", "bolt11"),
        ("POST", "/recover", {"bolt11": SPEC}, None, 404, "not_found", None),  # a real invoice, not ours
        ("POST", "/recover", [SPEC], None, 400, "invalid_request", None),
        ("GET", "/invoice/" + "ab" * 16 + "/status", None, None, 404, "not_found", None),
        ("GET", "/invoice/a%00b/status", None, None, 404, "not_found", None),
        (
            "POST",
            "/invoice",
            {"amount_sats": 10, "purpose": "refund"},
            None,
            400,
            "invalid_request",
            "purpose",
        ),
        (
            "POST",
            "/invoice",
            {"amount_sats": 10, "purpose": "topup"},
            None,
            401,
            "authentication_failed",
            None,
        ),
        (
            "POST",
            "/invoice",
            {"amount_sats": 10, "purpose": "topup", "api_key": 123},
            None,
            400,
            "invalid_request",
            "api_key",
        ),
        (
            "POST",
            "/invoice",
            {"amount_sats": 10, "purpose": "topup", "api_key": "nope"},
            None,
            401,
            "authentication_failed",
            None,
        ),
        (
            "POST",
            "/invoice",
            {"amount_sats": 10, "purpose": "topup", "api_key": "sk-" + "0" * 32},
            None,
            401,
            "authentication_failed",
            None,
        ),
        (  # two different keys: which one to credit is not guessed
            "POST",
            "/invoice",
            {"amount_sats": 10, "purpose": "topup", "api_key": "sk-" + "0" * 32},
            {"Authorization": f"Bearer {sk}"},
            400,
            "invalid_request",
            "api_key",
        ),
        (  # the amount is checked before the key
            "POST",
            "/invoice",
            {"amount_sats": 0, "purpose": "topup", "api_key": "nope"},
            None,
            400,
            "invalid_request",
            "amount_sats",
        ),
    ]
    for method, path, body, headers, code, type_, param in cases:
        async with http.request(method, base + path, json=body, headers=headers) as r:
            assert r.status == code, (path, body, await r.text())
            assert_envelope(await r.json(), type_, param)
    async with http.post(
        base + "/recover", data=b"{not json", headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400
        assert_envelope(await r.json(), "invalid_request")
    async with http.get(node.v1 + "/balance/info", headers={"Authorization": f"Bearer {sk}"}) as r:
        assert (await r.json())["balance"] == 20_000  # nothing refused was credited


async def test_polling_from_pending_to_paid_and_the_expired_shape(
    backend: str, nutshell_python: Path, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
):
    with NutshellMint("ln-compat") as mint:
        funds = await wallet.asend(mint.url, 200)  # eCash to pay with, while the mint still "brrs"
        mint.stop()
        mint.extra_env["FAKEWALLET_BRR"] = "False"  # from now on its invoices wait to be paid
        mint.start()
        async with (
            running_node(backend, mint.url, fake_upstream, tmp_path) as node,
            aiohttp.ClientSession() as http,
        ):
            sdk, ui = node.v1 + "/balance/lightning", node.url + "/lightning"
            inv = await create(http, sdk, {"amount_sats": 150, "purpose": "create"})
            late = await create(http, ui, {"amount_sats": 10, "purpose": "create"})
            assert inv["payment_hash"] == await reference_payment_hash(nutshell_python, inv["bolt11"])
            for _ in range(3):  # unpaid: pending, however often asked
                st = await status(http, sdk, inv["invoice_id"])
                assert set(st) == STATUS
                assert_status(st, inv, "pending")
            assert await recover(http, ui, inv["bolt11"]) == st
            async with aiohttp.ClientSession() as s:  # the user pays it: their eCash of that mint
                client = MintClient(mint.url, s)
                quote = await client.melt_quote(inv["bolt11"])
                ids = [k.id for k in await client.keysets()]
                proofs = resolve_short_keyset_ids(decode_token(funds).proofs, ids)  # V4 carries short ids
                assert (await client.melt(quote.quote, proofs)).is_paid
            st = await poll_until_paid(http, sdk, inv["invoice_id"])
            assert_status(st, inv, "paid")
            assert st["api_key"] == node.app[NODE].invoices.created_key(inv["invoice_id"])
            assert st["balance"] == 150_000
            key_id = await node.app[NODE].auth.key_id(st["api_key"])
            assert (await node.ledger_sums(key_id))["credit"] == 150_000
            # the other one is never paid; its expiry (an hour at this mint) is brought forward
            async with node.db.write() as conn:
                await conn.execute(
                    update(invoices)
                    .where(invoices.c.id == late["invoice_id"])
                    .values(expires_at=now_ms() - 1000)
                )
            st = await status(http, ui, late["invoice_id"])
            assert set(st) == STATUS
            assert st["status"] == st["state"] == "expired" and st["paid_at"] is None
            assert st["expires_at"] < late["expires_at"] and st["created_at"] == late["created_at"]
            assert await recover(http, node.v1 + "/wallet/lightning", late["bolt11"]) == st
            assert await status(http, sdk, late["invoice_id"]) == st  # expired stays expired
