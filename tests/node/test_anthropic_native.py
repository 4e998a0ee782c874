"""An Anthropic-type provider: /v1/messages forwarded as it is and metered in Anthropic's dialect
(cache reads and writes priced apart); chat completions go to an OpenAI-type provider instead."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from anthropic import AsyncAnthropic

from routstr.devtools.fake_anthropic import expected_anthropic_usage
from routstr.devtools.fake_llm import expected_usage
from routstr.devtools.fake_upstream import STATE, start_fake_upstream
from routstr.devtools.test_wallet import TestWallet
from routstr.dialects.anthropic import to_usage as anthropic
from routstr.node import NODE
from tests.conftest import PRICING, UPSTREAM_KEY, Upstream, chat_body, running_node
from tests.pricing_oracle import advertised, from_listing, listed_part, operator_prices

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_native_messages_and_chat_elsewhere(
    backend: str, mint_url: str, wallet: TestWallet, tmp_path: Path, http: aiohttp.ClientSession
):
    runner, url = await start_fake_upstream(expected_api_key=UPSTREAM_KEY, timeout_s=3)
    state = runner.app[STATE]
    providers = tmp_path / "providers.toml"
    providers.write_text(
        f'[[providers]]\nname = "anthropic"\ntype = "anthropic"\nbase_url = "{url}"\n'
        f'api_key = "{UPSTREAM_KEY}"\n\n'
        f'[[providers]]\nname = "openai"\nbase_url = "{url}"\napi_key = "{UPSTREAM_KEY}"\nfee = 0.1\n'
    )
    env = {"UPSTREAM_BASE_URL": "", "PROVIDERS_FILE": str(providers)}
    try:
        async with running_node(backend, mint_url, Upstream(url, state), tmp_path, **env) as node:
            token = await wallet.asend(mint_url, 50)
            key_id = await node.app[NODE].auth.key_id(token)
            client = AsyncAnthropic(base_url=node.url, api_key=token, max_retries=0)
            body = {
                "model": "claude-haiku-4-5",
                "max_tokens": 30,
                "messages": [{"role": "user", "content": "Hello, native Anthropic"}],
            }
            listed = await advertised(http, node.v1)
            # the cache prices are not in the listing: the pricing file's, its other prices as listed
            price = operator_prices(PRICING, body["model"])
            assert listed_part(price) == from_listing(listed[body["model"]])
            assert price.cached_prompt is not None and price.cache_write is not None

            msg = await client.messages.create(**body, extra_body={"fake_cache_read_tokens": 2000})  # type: ignore[call-overload]
            raw_usage = expected_anthropic_usage({**body, "fake_cache_read_tokens": 2000})
            u = anthropic(raw_usage)
            assert u is not None and u.cached_tokens == 2000
            assert msg.usage.cache_read_input_tokens == 2000
            assert state.by_path["/v1/messages"] == 1 and state.x_api_keys[UPSTREAM_KEY] >= 1
            first = price.anthropic_cost(raw_usage)
            assert first < listed_part(price).anthropic_cost(raw_usage)  # cache reads are cheaper
            assert msg.usage.model_extra["cost"]["msats"] == first  # type: ignore[index]

            async with client.messages.stream(**body) as stream:  # type: ignore[arg-type]
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
            raw_usage = expected_anthropic_usage(body)
            assert text.startswith("Echo:") and final.usage.output_tokens == raw_usage["output_tokens"]
            second = price.anthropic_cost(raw_usage)

            chat = chat_body(max_tokens=5)
            async with http.post(
                node.v1 + "/chat/completions", json=chat, headers={"Authorization": f"Bearer {token}"}
            ) as r:
                assert r.status == 200
                third = int(r.headers["X-Routstr-Cost-Msats"])
            assert state.by_path["/v1/chat/completions"] == 1  # chat went to the OpenAI-type provider
            async with http.get(node.v1 + "/info") as r:
                fee = (await r.json())["fees"]["provider_markup"]["openai"]
            u = expected_usage(chat)
            with_fee = from_listing(listed[chat["model"]]).with_fee(fee)
            assert third == with_fee.cost(u["prompt_tokens"], u["completion_tokens"])
            row = await node.assert_books_balance(key_id)
            assert row.balance_msat == 50_000 - first - second - third
    finally:
        await runner.cleanup()
