"""USD-priced models are charged at the live BTC/USD median; a stale rate is a 503, never a guess."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from routstr.devtools.fake_llm import expected_usage
from routstr.devtools.fake_prices import STATE, sources_spec, start_fake_prices
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from tests.conftest import Upstream, chat_body, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_live_rate_and_staleness(
    backend: str,
    mint_url: str,
    fake_upstream: Upstream,
    wallet: TestWallet,
    tmp_path: Path,
    http: aiohttp.ClientSession,
):
    runner, base = await start_fake_prices()
    prices = runner.app[STATE]
    prices.prices.update(
        {"coinbase": Decimal(99_000), "kraken": Decimal(100_000), "bitstamp": Decimal(250_000)}
    )
    env = {
        "BTC_USD_PRICE": "",
        "BTC_USD_SOURCES": sources_spec(base, ("coinbase", "kraken", "bitstamp")),
        "BTC_USD_REFRESH_SECONDS": "1",
        "BTC_USD_MAX_AGE_SECONDS": "2",
    }
    try:
        async with running_node(backend, mint_url, fake_upstream, tmp_path, **env) as node:
            token = await wallet.asend(mint_url, 50)
            headers = {"Authorization": f"Bearer {token}"}
            body = chat_body("priced in dollars", model="gpt-4o", max_tokens=20)
            async with http.post(node.v1 + "/chat/completions", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()
                cost = int(r.headers["X-Routstr-Cost-Msats"])
            # the median of 99,000 / 100,000 / 250,000 is 100,000 USD/BTC: 2.5 USD/Mtok = 2.5 msat a token
            u = expected_usage(body)
            assert (
                cost
                == -(-(u["prompt_tokens"] * 2_500_000 + u["completion_tokens"] * 10_000_000) // 10**6) + 1000
            )

            for name in ("coinbase", "kraken", "bitstamp"):
                prices.mode[name] = "down"
            key_id = await node.app[NODE].auth.key_id(token)
            for _ in range(60):  # answered at the last rate until it is 2 s old, then refused
                async with http.post(node.v1 + "/chat/completions", json=body, headers=headers) as r:
                    if r.status == 503:
                        err = (await r.json())["error"]
                        break
                await asyncio.sleep(0.1)
            assert (
                err["code"] == "btc_usd_rate_stale" and "USD-priced models are unavailable" in err["message"]
            )
            before = (await node.key_row(key_id)).balance_msat
            async with http.post(node.v1 + "/chat/completions", json=body, headers=headers) as r:
                assert r.status == 503
            async with http.get(node.v1 + "/models") as r:
                listed = {m["id"] for m in (await r.json())["data"]}
            assert "gpt-4o" not in listed and "gpt-4o-mini" in listed
            sat_priced = chat_body("priced in sats", max_tokens=5)
            async with http.post(node.v1 + "/chat/completions", json=sat_priced, headers=headers) as r:
                assert r.status == 200
                sat_cost = int(r.headers["X-Routstr-Cost-Msats"])
            assert (await node.key_row(key_id)).balance_msat == before - sat_cost  # the 503s cost nothing

            prices.mode.clear()
            for _ in range(60):
                async with http.post(node.v1 + "/chat/completions", json=body, headers=headers) as r:
                    if r.status == 200:
                        break
                await asyncio.sleep(0.1)
            assert r.status == 200
            await node.assert_books_balance(key_id)
    finally:
        await runner.cleanup()
