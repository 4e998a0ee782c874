"""The balance routes as Routstr's SDK clients call them (issue 15): ``/v1/wallet/*``, ``api_key`` in
the info (also for a Cashu token used as the key), the history, refunds that survive a lost answer,
and donating a balance to the operator. Real mint tokens throughout; refund tokens are redeemed at
the mint by the test wallet.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from routstr.cashu.tokens import decode_token
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage.books import books
from routstr.wallet.audit import audit
from tests.conftest import NodeHandle, Upstream, chat_body, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def call(
    http: aiohttp.ClientSession, method: str, url: str, value: str | None = None, **kw: Any
) -> tuple[int, Any]:
    headers = {**(bearer(value) if value else {}), **kw.pop("headers", {})}
    async with http.request(method, url, headers=headers, **kw) as r:
        return r.status, await r.json()


async def new_sk(
    http: aiohttp.ClientSession, node: NodeHandle, wallet: TestWallet, mint: str, sats: int
) -> str:
    token = await wallet.asend(mint, sats)
    status, body = await call(http, "POST", node.v1 + "/wallet/create", json={"cashu_token": token})
    assert status == 201, body
    return str(body["api_key"])


async def refund_ledger(node: NodeHandle, key_id: int) -> int:
    return (await node.ledger_sums(key_id)).get("refund", 0)


async def test_every_balance_route_answers_under_wallet_too(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    sk = await new_sk(http, node, wallet, mint_url, 40)
    expected = {
        "api_key": sk,
        "balance": 40_000,
        "reserved": 0,
        "unit": "msat",
        "mint": mint_url,
        "token_unit": "sat",
        "total_spent": 0,
        "total_requests": 0,
        "is_child": False,
        "balance_limit": None,
        "balance_limit_reset": None,
        "validity_date": None,
    }
    for path in ("/wallet/info", "/wallet/", "/wallet", "/balance/info", "/balance/", "/balance"):
        status, body = await call(http, "GET", node.v1 + path, sk)
        assert (status, body) == (200, expected), path
    top = await wallet.asend(mint_url, 10)
    status, body = await call(http, "POST", node.v1 + "/wallet/topup", sk, json={"cashu_token": top})
    assert status == 200 and body["msats"] == 10_000 and body["balance"] == 50_000
    status, body = await call(http, "GET", node.v1 + "/wallet/info", "sk-" + "0" * 32)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


async def test_a_token_key_is_given_an_sk_key_of_the_same_balance(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 30)
    status, info = await call(http, "GET", node.v1 + "/wallet/info", token)
    assert status == 200 and info["balance"] == 30_000
    sk = info["api_key"]
    assert sk.startswith("sk-") and len(sk) == 35
    _, again = await call(http, "GET", node.v1 + "/balance/info", token)
    assert again["api_key"] == sk  # stable across calls
    _, by_sk = await call(http, "GET", node.v1 + "/wallet/info", sk)
    assert by_sk == info  # the sk- key opens the same balance, and names itself
    key_id = await node.app[NODE].auth.key_id(token)
    node.app[NODE].auth._ids.clear()  # from the database, not from the cache
    assert await node.app[NODE].auth.key_id(sk) == key_id
    # spent through the sk- key, seen through the token: one balance
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=10), headers=bearer(sk)
    ) as r:
        assert r.status == 200, await r.text()
    top = await wallet.asend(mint_url, 5)
    status, _ = await call(http, "POST", node.v1 + "/wallet/topup", sk, json={"cashu_token": top})
    assert status == 200
    row = await node.assert_books_balance(key_id)
    _, through_token = await call(http, "GET", node.v1 + "/wallet/info", token)
    assert through_token["api_key"] == sk and through_token["total_requests"] == 1
    assert through_token["balance"] == row.balance_msat == 35_000 - row.total_spent_msat
    # another token's sk- key is another balance
    other = await wallet.asend(mint_url, 3)
    _, other_info = await call(http, "GET", node.v1 + "/wallet/info", other)
    assert other_info["api_key"] != sk and other_info["balance"] == 3_000


async def test_history_lists_deposits_and_refunds_newest_first(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    sk = await new_sk(http, node, wallet, mint_url, 40)
    top = await wallet.asend(mint_url, 10)
    await call(http, "POST", node.v1 + "/wallet/topup", sk, json={"cashu_token": top})
    status, inv = await call(
        http, "POST", node.url + "/lightning/invoice", sk, json={"amount_sats": 20, "purpose": "topup"}
    )
    assert status == 200, inv
    status, paid = await call(http, "GET", node.url + f"/lightning/invoice/{inv['invoice_id']}/status")
    assert paid["state"] == "paid", paid
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=10), headers=bearer(sk)
    ) as r:
        assert r.status == 200
    status, refund = await call(http, "POST", node.v1 + "/wallet/refund", sk)
    assert status == 200, refund

    status, page = await call(http, "GET", node.v1 + "/wallet/history", sk)
    assert status == 200
    entries = page["transactions"]
    assert [(e["type"], e["source"], e["amount"]) for e in entries] == [
        ("refund", "cashu", refund["msats"]),
        ("deposit", "lightning", 20_000),
        ("deposit", "cashu", 10_000),
        ("deposit", "cashu", 40_000),
    ]  # the chat's charge is not a transaction: total_spent says it
    assert refund["msats"] == refund["amount"] * 1000  # this mint charges no fee
    for e in entries:
        assert set(e) == {
            "id", "type", "source", "amount", "unit", "mint_url", "created_at", "collected", "swept", "state",
        }  # fmt: skip
        assert e["unit"] == "msat" and e["mint_url"] == mint_url and e["state"] == "done"
        assert e["collected"] is True and e["swept"] is False
        assert isinstance(e["created_at"], int) and 1_700_000_000 < e["created_at"] < 5_000_000_000
    assert page["next_before"] is None
    assert refund["token"] not in str(page)  # the history never carries a token

    # pages of one, by the cursor; the same under /v1/balance
    seen = []
    before = None
    while True:
        query = {"limit": "1", **({"before": before} if before else {})}
        _, one = await call(http, "GET", node.v1 + "/balance/history", sk, params=query)
        seen += one["transactions"]
        before = one["next_before"]
        if before is None:
            break
    assert [e["id"] for e in seen] == [e["id"] for e in entries]

    # hostile parameters are 400s in the envelope; another key's entry is not a cursor here
    other = await new_sk(http, node, wallet, mint_url, 2)
    _, others = await call(http, "GET", node.v1 + "/wallet/history", other)
    assert [e["amount"] for e in others["transactions"]] == [2_000]
    bad = [{"limit": "0"}, {"limit": "201"}, {"limit": "x"}, {"limit": "-1"}, {"before": "zz"},
           {"before": "a" * 65}, {"before": others["transactions"][0]["id"]}]  # fmt: skip
    for query in bad:
        status, body = await call(http, "GET", node.v1 + "/wallet/history", sk, params=query)
        assert status == 400 and body["error"]["type"] == "invalid_request", (query, body)
        assert body["error"]["details"]["param"] in ("limit", "before")
    status, body = await call(http, "GET", node.v1 + "/wallet/history")
    assert status == 401 and body["error"]["type"] == "authentication_failed"


async def test_a_refund_asked_again_is_the_same_token_until_it_is_spent(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    sk = await new_sk(http, node, wallet, mint_url, 30)
    key_id = await node.app[NODE].auth.key_id(sk)
    status, first = await call(http, "POST", node.v1 + "/wallet/refund", sk)
    assert status == 200 and first["amount"] == 30 and first["msats"] == 30_000 and first["balance"] == 0
    status, again = await call(http, "POST", node.v1 + "/balance/refund", sk)
    assert (status, again) == (200, first)  # the answer was lost: the same body, not "nothing to refund"
    assert await refund_ledger(node, key_id) == 30_000  # debited once

    # a top-up meanwhile stays on the key: no second refund while the first token is unspent
    top = await wallet.asend(mint_url, 7)
    await call(http, "POST", node.v1 + "/wallet/topup", sk, json={"cashu_token": top})
    status, third = await call(http, "POST", node.v1 + "/wallet/refund", sk)
    assert status == 200 and third["token"] == first["token"] and third["balance"] == 7_000
    assert await refund_ledger(node, key_id) == 30_000

    assert await wallet.areceive(first["token"]) == 30  # the wallet redeems it
    status, second = await call(http, "POST", node.v1 + "/wallet/refund", sk)
    assert status == 200 and second["token"] != first["token"]
    assert second["amount"] == 7 and second["msats"] == 7_000 and second["balance"] == 0
    status, second_again = await call(http, "POST", node.v1 + "/wallet/refund", sk)
    assert (status, second_again) == (200, second)
    assert await refund_ledger(node, key_id) == 37_000
    assert await wallet.areceive(second["token"]) == 7
    status, body = await call(http, "POST", node.v1 + "/wallet/refund", sk)
    assert status == 400 and body["error"]["message"].startswith("Nothing to refund")
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 0 and await refund_ledger(node, key_id) == 37_000


async def test_concurrent_refunds_debit_once(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    sk = await new_sk(http, node, wallet, mint_url, 25)
    key_id = await node.app[NODE].auth.key_id(sk)
    answers = await asyncio.gather(*(call(http, "POST", node.v1 + "/wallet/refund", sk) for _ in range(8)))
    assert {status for status, _ in answers} == {200}
    assert len({body["token"] for _, body in answers}) == 1  # one token, handed to every caller
    assert await refund_ledger(node, key_id) == 25_000
    assert await wallet.areceive(answers[0][1]["token"]) == 25
    await node.assert_books_balance(key_id)


async def test_a_token_key_refund_and_its_change_are_handed_out_until_spent(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 12)
    status, first = await call(http, "POST", node.v1 + "/wallet/refund", token)
    assert status == 200 and first["amount"] == 12
    _, again = await call(http, "POST", node.v1 + "/wallet/refund", token)
    assert again == first
    # X-Cashu change: asked for three times at once, before and after the wallet takes it
    paid = await wallet.asend(mint_url, 40)
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=20), headers={"X-Cashu": paid}
    ) as r:
        assert r.status == 200
        change = r.headers["X-Cashu"]
    answers = await asyncio.gather(
        *(call(http, "POST", node.v1 + "/wallet/refund", headers={"X-Cashu": paid}) for _ in range(3))
    )
    assert {(s, b["token"]) for s, b in answers} == {(200, change)}
    change_amount = sum(p.amount for p in decode_token(change).proofs)
    assert await wallet.areceive(change) == change_amount
    assert await wallet.areceive(first["token"]) == 12


async def test_a_mint_that_is_down_is_a_503_and_the_token_comes_back_after(
    backend: str, nutshell_python: Path, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
):
    with NutshellMint("wallet-refund-down") as mint:
        async with (
            running_node(backend, mint.url, fake_upstream, tmp_path) as node,
            aiohttp.ClientSession() as http,
        ):
            sk = await new_sk(http, node, wallet, mint.url, 20)
            key_id = await node.app[NODE].auth.key_id(sk)
            status, first = await call(http, "POST", node.v1 + "/wallet/refund", sk)
            assert status == 200
            mint.stop()
            status, body = await call(http, "POST", node.v1 + "/wallet/refund", sk)
            assert status == 503 and body["error"]["code"] == "mint_unavailable"
            assert set(body["error"]) == {"type", "message", "code", "details"}
            mint.start()
            status, again = await call(http, "POST", node.v1 + "/wallet/refund", sk)
            assert (status, again) == (200, first)
            assert await refund_ledger(node, key_id) == 20_000
            assert await wallet.areceive(first["token"]) == 20


async def test_donate_gives_the_balance_to_the_operator_and_the_books_stay_balanced(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        sk = await new_sk(http, node, wallet, mint_url, 20)
        key_id = await node.app[NODE].auth.key_id(sk)
        for amount in (0, -5, 1.5, "100", True, 2**63):
            status, body = await call(
                http, "POST", node.v1 + "/wallet/donate", sk, json={"amount_msat": amount}
            )
            assert status == 400 and body["error"]["details"]["param"] == "amount_msat", amount
        status, body = await call(http, "POST", node.v1 + "/wallet/donate", sk, json={"amount_msat": 20_001})
        assert status == 402 and body["error"]["type"] == "insufficient_balance"
        status, body = await call(http, "POST", node.v1 + "/wallet/donate", sk, json={"amount_msat": 5_000})
        assert (status, body) == (200, {"donated_msat": 5_000, "balance": 15_000, "unit": "msat"})
        status, body = await call(http, "POST", node.v1 + "/balance/donate", sk)
        assert (status, body) == (200, {"donated_msat": 15_000, "balance": 0, "unit": "msat"})
        status, body = await call(http, "POST", node.v1 + "/wallet/donate", sk)
        assert status == 400 and body["error"]["code"] == "nothing_to_donate"
        row = await node.assert_books_balance(key_id)
        assert row.balance_msat == 0 and row.total_spent_msat == 0
        async with node.db.read() as conn:
            [b] = await books(conn)
        assert b.owed_msat == 0 and b.surplus_msat == 20_000  # all of it is the operator's now
        report = await audit(node.db, node.app[NODE].mints)
        assert report.ok, report.problems

        # from the attacker's side: a refund and a donation racing for one balance take it once
        sk2 = await new_sk(http, node, wallet, mint_url, 9)
        key2 = await node.app[NODE].auth.key_id(sk2)
        (rs, refunded), (ds, donated) = await asyncio.gather(
            call(http, "POST", node.v1 + "/wallet/refund", sk2),
            call(http, "POST", node.v1 + "/wallet/donate", sk2),
        )
        out = (refunded["msats"] if rs == 200 else 0) + (donated["donated_msat"] if ds == 200 else 0)
        assert out == 9_000 and {rs, ds} <= {200, 400}
        row2 = await node.assert_books_balance(key2)
        assert row2.balance_msat == 0
        if rs == 200:
            assert await wallet.areceive(refunded["token"]) == refunded["amount"]
        report = await audit(node.db, node.app[NODE].mints)
        assert report.ok, report.problems
