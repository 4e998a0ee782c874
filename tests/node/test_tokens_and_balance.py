"""Redeeming tokens: once only, bad tokens refused in the envelope, sk- keys, top-up and refund."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import aiohttp
import pytest
from openai import AsyncOpenAI

from routstr.cashu.tokens import Token, decode_token, encode_token_v4
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from tests.conftest import NodeHandle, chat_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_same_token_twenty_at_once_is_credited_once(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 64)

    async def one() -> int:
        body = chat_body("race", max_tokens=20)  # small reservations: this test is about redemption
        async with http.post(node.v1 + "/chat/completions", json=body, headers=bearer(token)) as r:
            await r.read()
            return r.status

    statuses = await asyncio.gather(*(one() for _ in range(20)))
    assert statuses == [200] * 20
    key_id = await node.app[NODE].auth.key_id(token)
    sums = await node.ledger_sums(key_id)
    assert sums["credit"] == 64_000
    row = await node.assert_books_balance(key_id)
    assert row.total_requests == 20
    assert await wallet.acheck(token) == ["SPENT"] * len(decode_token(token).proofs)


async def test_v3_and_v4_encodings_of_one_token_are_one_balance(
    node: NodeHandle, wallet: TestWallet, mint_url: str
):
    v3 = await wallet.asend(mint_url, 8, legacy=True)
    v4 = encode_token_v4(decode_token(v3))
    assert v4.startswith("cashuB")
    a = await node.app[NODE].auth.key_id(v3)
    b = await node.app[NODE].auth.key_id(v4)
    assert a == b
    assert (await node.ledger_sums(a))["credit"] == 8000


async def test_bad_tokens_are_4xx_in_the_envelope(node: NodeHandle, wallet: TestWallet, mint_url: str, http):
    spent = await wallet.asend(mint_url, 5)
    assert await wallet.areceive(spent) == 5  # spent elsewhere before the node sees it
    good = decode_token(await wallet.asend(mint_url, 5))
    foreign = encode_token_v4(Token(mint="http://127.0.0.1:9/unknown-mint", unit="sat", proofs=good.proofs))
    odd_keyset = encode_token_v4(
        Token(mint=mint_url, unit="sat", proofs=[replace(p, id="01" + "ab" * 32) for p in good.proofs])
    )
    cases = {
        "spent": (spent, 400, "token_already_spent"),
        "garbage": ("cashuBnot-a-token!!", 400, "invalid_token"),
        "foreign mint": (foreign, 400, "mint_not_accepted"),
        "unknown keyset": (odd_keyset, 400, "invalid_token"),
        "not a key": ("hello", 401, "invalid_api_key"),
        "unknown sk": ("sk-" + "0" * 32, 401, "invalid_api_key"),
    }
    for name, (value, status, code) in cases.items():
        async with http.post(node.v1 + "/chat/completions", json=chat_body(), headers=bearer(value)) as r:
            body = await r.json()
            assert r.status == status, (name, body)
            assert body["error"]["code"] == code, (name, body)
            assert set(body["error"]) == {"type", "message", "code", "details"}
    async with http.post(node.v1 + "/chat/completions", json=chat_body()) as r:
        assert r.status == 401
        assert (await r.json())["error"]["type"] == "authentication_failed"
    # the foreign-mint token's proofs were never sent anywhere: still spendable at their real mint
    assert await wallet.acheck(encode_token_v4(good)) == ["UNSPENT"] * len(good.proofs)


async def test_bad_request_does_not_redeem_the_token(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http
):
    token = await wallet.asend(mint_url, 3)
    async with http.post(
        node.v1 + "/chat/completions", json={"model": "gpt-4o-mini"}, headers=bearer(token)
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"]["type"] == "invalid_request"
    assert set(await wallet.acheck(token)) == {"UNSPENT"}


async def test_sk_key_create_use_topup_refund(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 40)
    async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
        assert r.status == 201, await r.text()
        created = await r.json()
    sk = created["api_key"]
    assert sk.startswith("sk-") and len(sk) == 35
    assert created["balance"] == 40_000
    # asking again with the same token gives the same key, not a second credit
    async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
        again = await r.json()
    assert again["api_key"] == sk and again["balance"] == 40_000
    # the token itself is not a key to the sk- balance
    async with http.get(node.v1 + "/balance/info", headers=bearer(token)) as r:
        assert r.status == 400

    client = AsyncOpenAI(base_url=node.v1, api_key=sk, max_retries=0)
    await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    async with http.get(node.v1 + "/balance/info", headers={"x-api-key": sk}) as r:
        info = await r.json()
    assert 0 < info["total_spent"] < 40_000 and info["balance"] == 40_000 - info["total_spent"]

    top = await wallet.asend(mint_url, 10)
    async with http.post(node.v1 + "/balance/topup", json={"cashu_token": top}, headers=bearer(sk)) as r:
        assert r.status == 200, await r.text()
        topped = await r.json()
    assert topped["msats"] == 10_000 and topped["balance"] == info["balance"] + 10_000
    async with http.post(node.v1 + "/balance/topup", json={"cashu_token": top}, headers=bearer(sk)) as r:
        assert r.status == 400  # a token is credited once

    async with http.post(node.v1 + "/balance/refund", headers=bearer(sk)) as r:
        assert r.status == 200, await r.text()
        refund = await r.json()
    expected_sats = topped["balance"] // 1000
    assert refund["amount"] == expected_sats and refund["unit"] == "sat"
    assert refund["balance"] == topped["balance"] - expected_sats * 1000  # sub-sat dust stays on the key
    assert await wallet.areceive(refund["token"]) == expected_sats  # a real token, redeemable at the mint
    key_id = await node.app[NODE].auth.key_id(sk)
    await node.assert_books_balance(key_id)
    async with http.post(node.v1 + "/balance/refund", headers=bearer(sk)) as r:
        assert r.status == 400  # nothing left to refund


async def test_token_key_refund_returns_the_rest(node: NodeHandle, wallet: TestWallet, mint_url: str, http):
    token = await wallet.asend(mint_url, 30)
    client = AsyncOpenAI(base_url=node.v1, api_key=token, max_retries=0)
    await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    key_id = await node.app[NODE].auth.key_id(token)
    before = await node.key_row(key_id)
    async with http.post(node.v1 + "/balance/refund", headers=bearer(token)) as r:
        refund = await r.json()
    assert refund["amount"] == before.balance_msat // 1000
    assert await wallet.areceive(refund["token"]) == refund["amount"]
    after = await node.assert_books_balance(key_id)
    assert after.balance_msat == before.balance_msat - refund["amount"] * 1000


async def test_a_token_of_many_proofs_fits_in_the_header(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    """Wallets hand out tokens of dozens of proofs: well past aiohttp's default 8 KB header limit."""
    parts = [decode_token(await wallet.asend(mint_url, 1, legacy=True)) for _ in range(45)]
    big = Token(mint=mint_url, unit="sat", proofs=[p for t in parts for p in t.proofs])
    from routstr.cashu.tokens import encode_token_v3

    token = encode_token_v3(big)
    assert len(token) > 8192
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer(token)
    ) as r:
        assert r.status == 200, await r.text()
    key_id = await node.app[NODE].auth.key_id(token)
    assert (await node.ledger_sums(key_id))["credit"] == 45_000
