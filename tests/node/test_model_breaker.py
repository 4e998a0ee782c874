"""Issue 14, items 7 and 10, against a real ``routstr serve`` process (SQLite and PostgreSQL).

7: one failing model (broken, or failed on purpose) must not take its provider down, and a breaker
must never turn the only upstream off. 10: a model nobody serves is a 404 ``model_not_found``, never a
5xx that every SDK retries. Failed calls cost nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from routstr.devtools.fake_upstream import STATE, start_fake_upstream
from routstr.devtools.test_wallet import TestWallet
from tests.conftest import UPSTREAM_KEY, chat_body
from tests.node.node_process import NodeProcess, balance_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _post(
    http: aiohttp.ClientSession, node: NodeProcess, token: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
    async with http.post(
        node.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        return r.status, await r.json(), r.headers


async def _money(http: aiohttp.ClientSession, node: NodeProcess, token: str) -> tuple[int, int]:
    info = await balance_of(http, node, token)
    return info["balance"], info["reserved"]


async def _ready(http: aiohttp.ClientSession, node: NodeProcess) -> int:
    async with http.get(node.url + "/ready") as r:
        return r.status


async def test_a_failing_model_leaves_the_providers_other_models_answering(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    runner, url = await start_fake_upstream(expected_api_key=UPSTREAM_KEY)
    upstream = runner.app[STATE]
    node_proc.env |= {"UPSTREAM_BASE_URL": url, "PROVIDER_FAILURES_TO_OPEN": "3"}
    try:
        await asyncio.to_thread(node_proc.start)
        token = await wallet.asend(mint_url, 50)
        before = await _money(http, node_proc, token)
        for model, status in (("fail-500", 502), ("fail-429", 429)):
            for _ in range(10):
                got, body, _ = await _post(http, node_proc, token, chat_body(model=model, max_tokens=5))
                assert got == status, body  # tried every time: the only provider of the model
            assert upstream.by_model[model] == 10
        assert await _money(http, node_proc, token) == before  # failed calls cost nothing
        for model in ("gpt-4o-mini", "llama-3.1-8b"):
            got, body, headers = await _post(http, node_proc, token, chat_body(model=model, max_tokens=5))
            assert got == 200, body
            assert int(headers["X-Routstr-Cost-Msats"]) > 0
        assert await _ready(http, node_proc) == 200  # the provider is up: only two models fail
    finally:
        await runner.cleanup()


async def test_the_only_provider_is_still_tried_after_it_failed(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    runner, url = await start_fake_upstream(expected_api_key=UPSTREAM_KEY)
    port = runner.addresses[0][1]
    node_proc.env |= {"UPSTREAM_BASE_URL": url, "PROVIDER_COOLDOWN_SECONDS": "600"}
    try:
        await asyncio.to_thread(node_proc.start)
        token = await wallet.asend(mint_url, 50)
        before = await _money(http, node_proc, token)
        await runner.cleanup()  # the provider goes down: every model fails, the connection too
        for model in ("gpt-4o-mini", "llama-3.1-8b", "gpt-4o-mini", "fail-500"):
            got, body, _ = await _post(http, node_proc, token, chat_body(model=model, max_tokens=5))
            assert got == 502 and body["error"]["code"] == "upstream_error", body  # tried, unreachable
        assert await _ready(http, node_proc) == 503  # its connection breaker is open
        assert await _money(http, node_proc, token) == before  # failed calls cost nothing
        runner, _ = await start_fake_upstream(port=port, expected_api_key=UPSTREAM_KEY)
        # long before the cooldown ends, the next request is still tried (not refused with a 503)
        got, body, _ = await _post(http, node_proc, token, chat_body(max_tokens=5))
        assert got == 200, body
        assert runner.app[STATE].by_model["gpt-4o-mini"] == 1
        assert await _ready(http, node_proc) == 200  # the answer closed it
        balance, reserved = await _money(http, node_proc, token)
        assert reserved == 0 and balance < before[0]
    finally:
        await runner.cleanup()


async def test_a_model_nobody_serves_is_a_404(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession, tmp_path: Path
):
    providers = tmp_path / "providers.toml"
    providers.write_text('[aliases]\n"nowhere" = ["no-such-model-either"]\n')
    node_proc.env |= {"PROVIDERS_FILE": str(providers)}
    await asyncio.to_thread(node_proc.start)
    token = await wallet.asend(mint_url, 20)
    before = await _money(http, node_proc, token)
    for model in ("claude-sonnet-4-20250514", "nowhere"):  # Claude Code's default, an alias
        for _ in range(3):
            status, body, _ = await _post(http, node_proc, token, chat_body(model=model, max_tokens=5))
            assert status == 404, body
            assert body["error"]["type"] == "not_found" and body["error"]["code"] == "model_not_found"
            assert body["error"]["details"] == {"model": model}
    assert await _money(http, node_proc, token) == before
    # paid with X-Cashu: refused before the token is touched
    cashu = await wallet.asend(mint_url, 5)
    async with http.post(
        node_proc.url + "/v1/chat/completions",
        json=chat_body(model="claude-sonnet-4-20250514"),
        headers={"X-Cashu": cashu},
    ) as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "model_not_found"
    assert set(await wallet.acheck(cashu)) == {"UNSPENT"}


async def test_an_upstream_429_holds_that_pair_back_for_its_retry_after(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession, tmp_path: Path
):
    """The fake answers ``fail-429`` with ``Retry-After: 1``: one 429 holds the (provider, model) back
    a second, well below the failure threshold, while the provider's other models keep answering."""
    cheap_runner, cheap_url = await start_fake_upstream(expected_api_key=UPSTREAM_KEY)
    pricey_runner, pricey_url = await start_fake_upstream(expected_api_key=UPSTREAM_KEY)
    cheap, pricey = cheap_runner.app[STATE], pricey_runner.app[STATE]
    providers = tmp_path / "providers.toml"
    providers.write_text(
        "".join(
            f'[[providers]]\nname = "{name}"\nbase_url = "{url}"\napi_key = "{UPSTREAM_KEY}"\nfee = {fee}\n'
            for name, url, fee in (("cheap", cheap_url, 0), ("pricey", pricey_url, 0.5))
        )
    )
    node_proc.env |= {
        "UPSTREAM_BASE_URL": "",
        "PROVIDERS_FILE": str(providers),
        "PROVIDER_FAILURES_TO_OPEN": "10",
    }
    try:
        await asyncio.to_thread(node_proc.start)
        token = await wallet.asend(mint_url, 50)
        before = await _money(http, node_proc, token)
        rate_limited = chat_body(model="fail-429", max_tokens=5)
        status, _, headers = await _post(http, node_proc, token, rate_limited)
        assert status == 429 and headers["Retry-After"] == "1"
        assert (cheap.by_model["fail-429"], pricey.by_model["fail-429"]) == (1, 1)  # fell back once
        # both pairs held back: the least recently failed is tried all the same, and only it
        assert (await _post(http, node_proc, token, rate_limited))[0] == 429
        assert (cheap.by_model["fail-429"], pricey.by_model["fail-429"]) == (2, 1)
        status, body, _ = await _post(http, node_proc, token, chat_body(max_tokens=5))
        assert status == 200 and cheap.by_model["gpt-4o-mini"] == 1, body  # the cheap one's other model
        assert await _money(http, node_proc, token) != before
        await asyncio.sleep(1.2)  # the Retry-After has passed: both are tried in order again
        assert (await _post(http, node_proc, token, rate_limited))[0] == 429
        assert (cheap.by_model["fail-429"], pricey.by_model["fail-429"]) == (3, 2)
    finally:
        await cheap_runner.cleanup()
        await pricey_runner.cleanup()
