"""Chat completions paid with a Cashu token as the API key, billed exactly from usage."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from openai import APIStatusError, AsyncOpenAI

from routstr.devtools.fake_llm import expected_usage
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from tests.conftest import NodeHandle, chat_body
from tests.pricing_oracle import advertised_prices

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def expected_cost(node: NodeHandle, body: dict, model: str = "gpt-4o-mini") -> int:
    """The fake upstream's usage for ``body`` at the price ``/v1/models`` advertises for ``model``."""
    u = expected_usage(body)
    async with aiohttp.ClientSession() as http:
        price = await advertised_prices(http, node.v1, model)
    return price.cost(u["prompt_tokens"], u["completion_tokens"])


async def key_id_for(node: NodeHandle, bearer: str) -> int:
    return await node.app[NODE].auth.key_id(bearer)


@pytest.mark.parametrize("legacy", [False, True], ids=["V4-cashuB", "V3-cashuA"])
async def test_token_as_key_chat_charges_exactly(
    node: NodeHandle, wallet: TestWallet, mint_url: str, legacy: bool
):
    token = await wallet.asend(mint_url, 100, legacy=legacy)
    assert token.startswith("cashuA" if legacy else "cashuB")
    client = AsyncOpenAI(base_url=node.v1, api_key=token, max_retries=0)
    body = chat_body("What is the price of a sat?")
    resp = await client.chat.completions.create(model=body["model"], messages=body["messages"])
    assert resp.choices[0].message.content
    cost = await expected_cost(node, body)
    assert resp.usage is not None
    raw_cost = resp.usage.model_extra["cost"]  # type: ignore[index]
    assert raw_cost["msats"] == cost
    key_id = await key_id_for(node, token)
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 100_000 - cost
    assert row.reserved_msat == 0
    # the same token again is the same balance, not a second credit
    await client.chat.completions.create(model=body["model"], messages=body["messages"])
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 100_000 - 2 * cost
    assert (await node.ledger_sums(key_id))["credit"] == 100_000


async def test_upstream_receives_operator_key_not_users(node: NodeHandle, wallet: TestWallet, mint_url: str):
    token = await wallet.asend(mint_url, 10)
    client = AsyncOpenAI(base_url=node.v1, api_key=token, max_retries=0)
    await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert node.upstream.state.last_authorization == "Bearer sk-upstream-secret"
    assert token not in str(node.upstream.state.last_headers)


async def test_cost_header_and_usd_priced_model(node: NodeHandle, wallet: TestWallet, mint_url: str, http):
    token = await wallet.asend(mint_url, 50)
    body = chat_body("usd priced", model="gpt-4o")
    async with http.post(
        node.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 200
        data = await r.json()
        header_cost = int(r.headers["X-Routstr-Cost-Msats"])
    u = expected_usage(body)
    # at 100,000 USD/BTC: 2.5 USD/Mtok = 2.5 msat a prompt token, 10 USD/Mtok = 10 msat, 0.001 USD = 1000 msat
    want = -(-(u["prompt_tokens"] * 2_500_000 + u["completion_tokens"] * 10_000_000) // 1_000_000) + 1000
    assert header_cost == want == data["usage"]["cost"]["msats"]


async def test_streaming_is_charged_from_final_usage(node: NodeHandle, wallet: TestWallet, mint_url: str):
    token = await wallet.asend(mint_url, 100)
    client = AsyncOpenAI(base_url=node.v1, api_key=token, max_retries=0)
    body = chat_body("stream this please, word by word")
    stream = await client.chat.completions.create(
        model=body["model"], messages=body["messages"], stream=True, stream_options={"include_usage": True}
    )
    text, usage_chunks = "", []
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage_chunks.append(chunk.usage)
    assert text.startswith("Echo:")
    assert len(usage_chunks) == 1
    cost = await expected_cost(node, body)
    assert usage_chunks[0].model_extra["cost"]["msats"] == cost  # type: ignore[index]
    row = await node.assert_books_balance(await key_id_for(node, token))
    assert row.balance_msat == 100_000 - cost


async def test_stream_without_usage_request_hides_usage_chunk_but_still_bills(
    node: NodeHandle, wallet: TestWallet, mint_url: str
):
    token = await wallet.asend(mint_url, 100)
    client = AsyncOpenAI(base_url=node.v1, api_key=token, max_retries=0)
    body = chat_body("no usage asked")
    stream = await client.chat.completions.create(model=body["model"], messages=body["messages"], stream=True)
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks), (
        "a client that did not ask for usage must not get an empty-choices chunk"
    )
    row = await node.assert_books_balance(await key_id_for(node, token))
    assert row.balance_msat == 100_000 - await expected_cost(node, body)


async def test_upstream_failure_costs_nothing(node: NodeHandle, wallet: TestWallet, mint_url: str):
    token = await wallet.asend(mint_url, 20)
    client = AsyncOpenAI(base_url=node.v1, api_key=token, max_retries=0)
    key_id = await key_id_for(node, token)
    for model, status in (("fail-500", 502), ("fail-400", 400), ("fail-429", 429)):
        with pytest.raises(APIStatusError) as e:
            await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        assert e.value.status_code == status
        err = e.value.body
        assert isinstance(err, dict) and {"type", "message", "code"} <= set(err)
        if status == 429:
            assert e.value.response.headers.get("Retry-After") == "1"
    with pytest.raises(APIStatusError) as e:
        await client.chat.completions.create(
            model="fail-connection-drop", messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 502
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 20_000 and row.reserved_msat == 0


async def test_insufficient_balance_is_402_in_spec_shape(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http
):
    token = await wallet.asend(mint_url, 1)
    body = chat_body("x" * 2000, max_tokens=1000)
    async with http.post(
        node.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 402
        err = (await r.json())["error"]
    assert err["type"] == "insufficient_balance"
    assert err["code"] == "payment_required"
    assert err["details"]["available"] == 1000
    assert err["details"]["required"] > 1000
    assert (
        err["message"]
        == f"Insufficient balance. Current: 1000 msat, Required: {err['details']['required']} msat"
    )


async def test_no_max_tokens_is_capped_to_what_the_balance_pays(
    node: NodeHandle, wallet: TestWallet, mint_url: str
):
    token = await wallet.asend(mint_url, 1)  # 1000 msat cannot reserve a 128k-token answer
    client = AsyncOpenAI(base_url=node.v1, api_key=token, max_retries=0)
    body = chat_body("hello")
    resp = await client.chat.completions.create(model=body["model"], messages=body["messages"])
    assert resp.choices[0].message.content
    sent = node.upstream.state.last_body
    assert isinstance(sent["max_tokens"], int) and sent["max_tokens"] > 0
    await node.assert_books_balance(await key_id_for(node, token))


async def test_twenty_concurrent_requests_on_a_key_funded_for_three(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    body = chat_body("concurrency", max_tokens=50)
    price = await advertised_prices(http, node.v1, "gpt-4o-mini")
    reserve = price.reservation(len(orjson.dumps(body)), 50)
    sats = -(-(reserve * 3) // 1000)  # enough for three reservations, not four
    assert sats * 1000 < reserve * 4
    token = await wallet.asend(mint_url, sats)
    key_id = await key_id_for(node, token)

    async def one() -> int:
        async with http.post(
            node.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as r:
            await r.read()
            return r.status

    statuses = await asyncio.gather(*(one() for _ in range(20)))
    assert statuses.count(200) >= 3
    assert set(statuses) <= {200, 402}
    row = await node.assert_books_balance(key_id)
    assert row.reserved_msat == 0
    charged = (await node.ledger_sums(key_id))["charge"]
    assert charged == statuses.count(200) * await expected_cost(node, body)
    assert row.balance_msat == sats * 1000 - charged


async def test_clients_reusing_a_request_id_do_not_touch_each_others_money(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    """X-Request-ID is the client's: the ledger keys its entries by the node's own ids."""
    tokens = [await wallet.asend(mint_url, 10) for _ in range(3)]
    body = chat_body("same id", max_tokens=20)

    async def one(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "same-id-for-everyone"}
        async with http.post(node.v1 + "/chat/completions", json=body, headers=headers) as r:
            await r.read()
            assert r.headers["X-Request-ID"] == "same-id-for-everyone"
            return r.status

    assert await asyncio.gather(*(one(t) for t in tokens * 3)) == [200] * 9
    for t in tokens:
        row = await node.assert_books_balance(await key_id_for(node, t))
        assert row.reserved_msat == 0 and row.balance_msat == 10_000 - 3 * await expected_cost(node, body)
