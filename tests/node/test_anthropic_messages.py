"""Anthropic clients (the official SDK, Claude Code's URL layout) on an OpenAI-type upstream."""

from __future__ import annotations

import aiohttp
import pytest
from anthropic import AsyncAnthropic

from routstr.devtools.fake_llm import expected_usage
from routstr.devtools.test_wallet import TestWallet
from routstr.dialects.anthropic_chat import request_to_chat
from routstr.node import NODE
from tests.conftest import NodeHandle
from tests.pricing_oracle import advertised_prices

pytestmark = pytest.mark.asyncio(loop_scope="session")

BODY = {
    "model": "gpt-4o-mini",
    "max_tokens": 40,
    "system": "You are terse.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello from an Anthropic client"}]}],
}


async def expected(node: NodeHandle) -> tuple[dict[str, int], int]:
    """What the upstream will report for the translated request, and what that costs at the price
    ``/v1/models`` advertises."""
    u = expected_usage(request_to_chat(BODY))
    async with aiohttp.ClientSession() as http:
        price = await advertised_prices(http, node.v1, BODY["model"])
    return u, price.cost(u["prompt_tokens"], u["completion_tokens"])


@pytest.mark.parametrize("base", ["root", "v1"], ids=["base=node", "base=node/v1 (Claude Code)"])
async def test_messages_create(node: NodeHandle, wallet: TestWallet, mint_url: str, base: str):
    token = await wallet.asend(mint_url, 20)
    client = AsyncAnthropic(base_url=node.url if base == "root" else node.v1, api_key=token, max_retries=0)
    msg = await client.messages.create(**BODY)  # type: ignore[call-overload]
    u, cost = await expected(node)
    assert msg.content[0].type == "text" and msg.content[0].text.startswith("Echo:")
    assert msg.stop_reason == "end_turn"
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (u["prompt_tokens"], u["completion_tokens"])
    assert msg.usage.model_extra["cost"]["msats"] == cost  # type: ignore[index]
    row = await node.assert_books_balance(await node.app[NODE].auth.key_id(token))
    assert row.balance_msat == 20_000 - cost


async def test_messages_stream(node: NodeHandle, wallet: TestWallet, mint_url: str):
    token = await wallet.asend(mint_url, 20)
    client = AsyncAnthropic(base_url=node.url, api_key=token, max_retries=0)
    async with client.messages.stream(**BODY) as stream:  # type: ignore[arg-type]
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    u, cost = await expected(node)
    assert text.startswith("Echo:") and final.content[0].text == text  # type: ignore[union-attr]
    assert final.usage.output_tokens == u["completion_tokens"]
    row = await node.assert_books_balance(await node.app[NODE].auth.key_id(token))
    assert row.balance_msat == 20_000 - cost


async def test_count_tokens_is_answered_locally_and_free(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 5)
    client = AsyncAnthropic(base_url=node.url, api_key=token, max_retries=0)
    before = node.upstream.state.requests_total
    counted = await client.messages.count_tokens(
        model=BODY["model"], messages=BODY["messages"], system=BODY["system"]
    )  # type: ignore[arg-type]
    assert counted.input_tokens > 0
    assert node.upstream.state.requests_total == before
    row = await node.assert_books_balance(await node.app[NODE].auth.key_id(token))
    assert row.balance_msat == 5_000
