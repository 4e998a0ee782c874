"""One request sees one version of the runtime snapshot (upstream/runtime.py): a change the operator
makes while a request runs (an alias's target and price, a key's rate limits) reaches the next request,
never the one already running, whose provider, price, alias and limits all come from the version it
started with. On a node in this event loop, with two fake providers and the real mint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from routstr.devtools.fake_http import FakeUpstreamState
from routstr.devtools.fake_llm import FakeModel, expected_usage
from routstr.devtools.fake_upstream import STATE, start_fake_upstream
from routstr.devtools.test_wallet import TestWallet
from routstr.jobs import reload_limits
from routstr.limits import Limits
from routstr.node import NODE
from routstr.storage import limit_overrides
from tests.conftest import NodeHandle, Upstream, chat_body, running_node
from tests.node.admin_auth import admin_headers
from tests.pricing_oracle import Prices, from_listing

ALIAS = "house-chat"
FIRST = {"aliases": ["llama-3.1-8b"], "price": {"prompt_sats_per_mtok": 100, "completion_sats_per_mtok": 200}}
SECOND = {
    "aliases": ["db-only-model"],
    "price": {"prompt_sats_per_mtok": 300, "completion_sats_per_mtok": 900},
}


@asynccontextmanager
async def second_provider() -> AsyncIterator[tuple[str, FakeUpstreamState]]:
    """A second fake provider that serves only ``db-only-model``."""
    runner, url = await start_fake_upstream(models=[FakeModel("db-only-model", 32_000)], timeout_s=3)
    try:
        yield url, runner.app[STATE]
    finally:
        await runner.cleanup()


async def advertised(http: aiohttp.ClientSession, node: NodeHandle, model: str) -> Prices:
    async with http.get(node.v1 + "/models") as r:
        return from_listing({m["id"]: m for m in (await r.json())["data"]}[model])


def cost_of(price: Prices, body: dict[str, Any]) -> int:
    """The fake provider's usage for ``body`` at ``price`` (by ``tests/pricing_oracle.py``)."""
    u = expected_usage(body)
    return price.cost(u["prompt_tokens"], u["completion_tokens"])


async def set_up(
    http: aiohttp.ClientSession, node: NodeHandle, wallet: TestWallet, mint_url: str, extra_url: str
) -> tuple[dict[str, str], dict[str, str], int]:
    """Version A: the second provider in rotation, ``house-chat`` an alias of ``llama-3.1-8b`` (the
    first provider's) at its own price, a key at the node's default limits. (admin, bearer, key id)"""
    admin = await admin_headers(node)
    async with http.post(
        node.url + "/admin/api/providers", json={"name": "extra", "base_url": extra_url}, headers=admin
    ) as r:
        assert r.status == 201, await r.text()
    async with http.put(node.url + f"/admin/api/models/{ALIAS}", json=FIRST, headers=admin) as r:
        assert r.status == 200, await r.text()
    token = await wallet.asend(mint_url, 200)
    bearer = {"Authorization": f"Bearer {token}"}
    async with http.post(node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer) as r:
        assert r.status == 200 and r.headers["X-RateLimit-Limit"] == "100000"  # the node's default
    return admin, bearer, await node.app[NODE].auth.key_id(token)


async def change(http: aiohttp.ClientSession, node: NodeHandle, admin: dict[str, str], key_id: int) -> None:
    """Version B: the alias now stands for the second provider's model at another price, and the key
    has limits of its own."""
    async with http.put(node.url + f"/admin/api/models/{ALIAS}", json=SECOND, headers=admin) as r:
        assert r.status == 200, await r.text()
    url = node.url + f"/admin/api/keys/{key_id}/limits"
    async with http.put(url, json={"requests_per_minute": 7}, headers=admin) as r:
        assert r.status == 200, await r.text()


async def test_a_request_keeps_the_version_it_started_with_while_its_body_is_still_coming(
    backend: str, mint_url: str, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
) -> None:
    async with (
        second_provider() as (extra_url, extra),
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        admin, bearer, key_id = await set_up(http, node, wallet, mint_url, extra_url)
        first_price = await advertised(http, node, ALIAS)
        runtime = node.app[NODE].runtime
        started_at = runtime.current.version
        body = chat_body("through the alias", model=ALIAS, max_tokens=5)
        asked, go = asyncio.Event(), asyncio.Event()

        async def parts() -> AsyncIterator[bytes]:
            # the node answered "100 Continue": its handler runs (on this loop, it has read its
            # snapshot before it waits for the body); the body comes only after the change
            asked.set()
            await go.wait()
            yield orjson.dumps(body)

        async def send() -> tuple[int, str, int, str]:
            headers = {**bearer, "Content-Type": "application/json"}
            async with http.post(
                node.v1 + "/chat/completions", data=parts(), headers=headers, expect100=True
            ) as r:
                cost = int(r.headers.get("X-Routstr-Cost-Msats", "0"))
                return r.status, await r.text(), cost, r.headers.get("X-RateLimit-Limit", "")

        served = fake_upstream.state.by_model["llama-3.1-8b"]
        running = asyncio.create_task(send())
        await asyncio.wait_for(asked.wait(), 10)
        await change(http, node, admin, key_id)
        assert runtime.current.version > started_at
        go.set()
        status, text, cost, limit = await running
        assert status == 200, text
        # version A throughout: its alias's provider and target, its price, its limits
        assert (
            fake_upstream.state.by_model["llama-3.1-8b"] == served + 1
            and extra.by_model["db-only-model"] == 0
        )
        assert cost == cost_of(first_price, body) and limit == "100000"

        second_price = await advertised(http, node, ALIAS)
        assert second_price == Prices(300_000, 900_000) != first_price
        async with http.post(node.v1 + "/chat/completions", json=body, headers=bearer) as r:
            assert r.status == 200
            cost, limit = int(r.headers["X-Routstr-Cost-Msats"]), r.headers["X-RateLimit-Limit"]
        assert (
            extra.by_model["db-only-model"] == 1
            and fake_upstream.state.by_model["llama-3.1-8b"] == served + 1
        )
        assert cost == cost_of(second_price, body) and limit == "7"
        await node.assert_books_balance(key_id)


async def test_a_change_while_the_provider_answers_is_not_that_requests_price(
    backend: str, mint_url: str, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
) -> None:
    async with (
        second_provider() as (extra_url, extra),
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        admin, bearer, key_id = await set_up(http, node, wallet, mint_url, extra_url)
        first_price = await advertised(http, node, ALIAS)
        body = chat_body("slowly, through the alias", model=ALIAS, max_tokens=5, fake_delay_ms=600)
        served = fake_upstream.state.by_model["llama-3.1-8b"]

        async def ask() -> tuple[int, int]:
            async with http.post(node.v1 + "/chat/completions", json=body, headers=bearer) as r:
                return r.status, int(r.headers.get("X-Routstr-Cost-Msats", "0"))

        running = asyncio.create_task(ask())
        for _ in range(1000):  # the provider counts it when it arrives
            if fake_upstream.state.by_model["llama-3.1-8b"] > served:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the request never reached the provider")
        await change(http, node, admin, key_id)
        assert not running.done()  # the provider is still working on it
        status, cost = await running
        assert status == 200 and cost == cost_of(first_price, body)  # settled at the price it started with
        assert extra.by_model["db-only-model"] == 0
        await node.assert_books_balance(key_id)


async def test_limits_another_process_stored_come_in_a_new_version_only_when_they_changed(
    backend: str, mint_url: str, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
) -> None:
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        token = await wallet.asend(mint_url, 50)
        bearer = {"Authorization": f"Bearer {token}"}
        async with http.post(
            node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer
        ) as r:
            assert r.headers["X-RateLimit-Limit"] == "100000"
        live = node.app[NODE]
        key_id = await live.auth.key_id(token)
        assert await limit_overrides.set_override(node.db, key_id, Limits(9, 0, 0)) is not None  # elsewhere
        before = live.runtime.current
        assert await reload_limits(live) is True
        after = live.runtime.current
        assert after.version == before.version + 1 and after.limits.limits_for(key_id) == Limits(9, 0, 0)
        assert before.limits.limits_for(key_id) != Limits(9, 0, 0)  # the old version is left as it was
        assert after.providers is before.providers and after.offer is before.offer
        assert await reload_limits(live) is False and live.runtime.current is after  # nothing moved
        async with http.post(
            node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer
        ) as r:
            assert r.headers["X-RateLimit-Limit"] == "9"
