"""Several providers: the cheapest healthy one answers; a failing one is skipped, put on cooldown and
probed back; the user is charged once, at the price of the provider that answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from routstr.devtools.fake_llm import expected_usage
from routstr.devtools.fake_upstream import STATE, start_fake_upstream
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from tests.conftest import UPSTREAM_KEY, Upstream, chat_body, running_node
from tests.pricing_oracle import advertised_prices

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_routing_fallback_cooldown_and_probe(
    backend: str, mint_url: str, wallet: TestWallet, tmp_path: Path, http: aiohttp.ClientSession
):
    cheap_runner, cheap_url = await start_fake_upstream(expected_api_key=UPSTREAM_KEY, timeout_s=3)
    cheap_port = int(cheap_url.split(":")[2].split("/")[0])
    pricey_runner, pricey_url = await start_fake_upstream(expected_api_key="sk-second-provider", timeout_s=3)
    cheap, pricey = cheap_runner.app[STATE], pricey_runner.app[STATE]
    providers = tmp_path / "providers.toml"
    providers.write_text(
        f"""
[[providers]]
name = "cheap"
base_url = "{cheap_url}"
api_key = "{UPSTREAM_KEY}"

[[providers]]
name = "pricey"
base_url = "{pricey_url}"
api_key_env = "PRICEY_KEY"
fee = 0.5

[aliases]
"fast" = ["llama-3.1-8b", "gpt-4o-mini"]
"""
    )
    env = {
        "UPSTREAM_BASE_URL": "",
        "PROVIDERS_FILE": str(providers),
        "PRICEY_KEY": "sk-second-provider",
        "PROVIDER_FAILURES_TO_OPEN": "2",
        "PROVIDER_COOLDOWN_SECONDS": "1",
    }
    try:
        async with running_node(backend, mint_url, Upstream(cheap_url, cheap), tmp_path, **env) as node:
            token = await wallet.asend(mint_url, 100)
            headers = {"Authorization": f"Bearer {token}"}
            body = chat_body("route me", max_tokens=20)
            u = expected_usage(body)
            # the advertised price, and the markups the node publishes in /v1/info
            base = await advertised_prices(http, node.v1, "gpt-4o-mini")
            async with http.get(node.v1 + "/info") as r:
                fees = (await r.json())["fees"]["provider_markup"]
            assert fees == {"cheap": "0", "pricey": "0.5"}
            cheap_cost = base.with_fee(fees["cheap"]).cost(u["prompt_tokens"], u["completion_tokens"])
            pricey_cost = base.with_fee(fees["pricey"]).cost(u["prompt_tokens"], u["completion_tokens"])
            assert pricey_cost > cheap_cost

            async def ask(payload: dict = body) -> tuple[int, int]:
                async with http.post(node.v1 + "/chat/completions", json=payload, headers=headers) as r:
                    await r.read()
                    return r.status, int(r.headers.get("X-Routstr-Cost-Msats", "0"))

            assert await ask() == (200, cheap_cost)
            assert (cheap.by_model["gpt-4o-mini"], pricey.by_model["gpt-4o-mini"]) == (1, 0)
            # an alias: one public id, served under the provider's own model id
            status, _ = await ask(chat_body("via alias", model="fast", max_tokens=5))
            assert status == 200 and cheap.by_model["llama-3.1-8b"] == 1 and cheap.by_model["fast"] == 0
            async with http.get(node.v1 + "/models") as r:
                assert "fast" in {m["id"] for m in (await r.json())["data"]}
            # a 4xx the request caused is not retried elsewhere
            assert (await ask(chat_body("bad", model="fail-400")))[0] == 400
            assert pricey.by_model["fail-400"] == 0

            await cheap_runner.cleanup()  # the cheap provider goes down
            assert await ask() == (200, pricey_cost)  # fell back, charged once at the answering price
            assert await ask() == (200, pricey_cost)
            breaker = node.app[NODE].providers[0].breaker
            assert breaker.is_open  # two failures in a row: on cooldown, not even tried now
            assert await ask() == (200, pricey_cost)

            cheap_runner, _ = await start_fake_upstream(port=cheap_port, expected_api_key=UPSTREAM_KEY)
            await asyncio.sleep(1.1)  # the cooldown ends: the next request probes the cheap provider
            assert await ask() == (200, cheap_cost)
            assert not breaker.is_open and cheap_runner.app[STATE].by_model["gpt-4o-mini"] == 1

            key_id = await node.app[NODE].auth.key_id(token)
            row = await node.assert_books_balance(key_id)
            alias_cost = (await node.ledger_sums(key_id))["charge"] - 2 * cheap_cost - 3 * pricey_cost
            assert alias_cost > 0
            assert row.balance_msat == 100_000 - 2 * cheap_cost - 3 * pricey_cost - alias_cost
            assert row.total_requests == 7
    finally:
        await cheap_runner.cleanup()
        await pricey_runner.cleanup()
