"""Streams that do not end well, and answers without usage: billed by the documented estimate.

The estimate (README "Billing", written out again in tests/pricing_oracle.py): ceil(bytes / 4) tokens,
at least one, of the prompt's text and of the text actually delivered. Never free, never the whole
reservation.
"""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from tests.conftest import NodeHandle, chat_body
from tests.pricing_oracle import advertised_prices, estimate_tokens

pytestmark = pytest.mark.asyncio(loop_scope="session")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def charges(node: NodeHandle, key_id: int) -> list[tuple[int, int | None, int | None]]:
    from sqlalchemy import select

    from routstr.storage.schema import ledger

    async with node.db.read() as conn:
        rows = await conn.execute(
            select(ledger.c.amount_msat, ledger.c.prompt_tokens, ledger.c.completion_tokens).where(
                ledger.c.key_id == key_id, ledger.c.kind == "charge"
            )
        )
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def wait_settled(node: NodeHandle, key_id: int) -> None:
    for _ in range(200):
        if (await node.key_row(key_id)).reserved_msat == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("reservation never settled")


async def test_client_disconnect_mid_stream_bills_what_was_delivered(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 50)
    key_id = await node.app[NODE].auth.key_id(token)
    prompt = "please stream a long answer slowly " * 4
    body = chat_body(prompt, model="slow-stream", stream=True, fake_delay_ms=150, max_tokens=200)
    resp = await http.post(node.v1 + "/chat/completions", json=body, headers=bearer(token))
    assert resp.status == 200
    got = b""
    while got.count(b"data:") < 3:
        got += await resp.content.readany()
    resp.close()  # the client goes away
    await wait_settled(node, key_id)
    (amount, pt, ct), *_ = await charges(node, key_id)
    assert pt == estimate_tokens(len(prompt.encode()))
    assert ct is not None and 1 <= ct < 60  # a few words were delivered, far fewer than the echo
    price = await advertised_prices(http, node.v1, "slow-stream")
    assert amount == price.cost(pt, ct) > 0
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 50_000 - amount


async def test_upstream_cutting_the_stream_bills_the_estimate(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 20)
    key_id = await node.app[NODE].auth.key_id(token)
    body = chat_body("cut me off", model="cut-stream", stream=True, stream_options={"include_usage": True})
    async with http.post(node.v1 + "/chat/completions", json=body, headers=bearer(token)) as r:
        raw = b""
        try:
            async for chunk in r.content.iter_any():
                raw += chunk
        except aiohttp.ClientPayloadError:
            pass  # the upstream broke off; the node ends the stream too
    assert b"[DONE]" not in raw
    await wait_settled(node, key_id)
    (amount, pt, ct), *_ = await charges(node, key_id)
    assert pt == estimate_tokens(len(b"cut me off")) and ct is not None and ct >= 1
    assert amount == (await advertised_prices(http, node.v1, "cut-stream")).cost(pt, ct) > 0
    await node.assert_books_balance(key_id)


async def test_answer_without_usage_is_billed_by_estimate(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 20)
    key_id = await node.app[NODE].auth.key_id(token)
    async with http.post(
        node.v1 + "/chat/completions",
        json=chat_body("no usage here", model="no-usage"),
        headers=bearer(token),
    ) as r:
        data = await r.json()
    text = data["choices"][0]["message"]["content"]
    (amount, pt, ct), *_ = await charges(node, key_id)
    assert (pt, ct) == (estimate_tokens(len(b"no usage here")), estimate_tokens(len(text.encode())))
    price = await advertised_prices(http, node.v1, "no-usage")
    assert data["usage"]["cost"]["msats"] == amount == price.cost(pt, ct) > 0
    await node.assert_books_balance(key_id)


async def test_client_gone_before_the_stream_starts_is_still_settled(
    node: NodeHandle, wallet: TestWallet, mint_url: str
):
    token = await wallet.asend(mint_url, 20)
    key_id = await node.app[NODE].auth.key_id(token)
    body = orjson.dumps(chat_body("hang up at once", stream=True, max_tokens=20))
    host, port = node.url.removeprefix("http://").split(":")
    for _ in range(5):
        _reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()  # gone before any answer
    for _ in range(200):
        row = await node.key_row(key_id)
        if row.reserved_msat == 0 and row.total_requests == 5:
            break
        await asyncio.sleep(0.02)
    row = await node.assert_books_balance(key_id)
    assert row.reserved_msat == 0 and row.total_requests == 5
    for amount, _, ct in await charges(node, key_id):
        assert amount > 0 and ct is not None and ct >= 1  # billed what was delivered, by the estimate
