"""Providers and models managed at run time through the admin API: stored (keys sealed), applied at
once in the process that made the change and within CATALOGUE_SYNC_SECONDS in the others, and billed
at the prices they set."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from routstr.app import create_app
from routstr.config import Settings
from routstr.core.sealed import unseal
from routstr.devtools.fake_llm import FakeModel, expected_usage
from routstr.devtools.fake_upstream import STATE, start_fake_upstream
from routstr.devtools.test_wallet import TestWallet
from routstr.node import MANAGED, NODE
from routstr.storage.provider_store import KEY_PURPOSE
from routstr.storage.schema import ledger, node_settings, providers
from tests.conftest import Upstream, chat_body, running_node
from tests.node.admin_auth import admin_headers
from tests.pricing_oracle import Prices, from_listing

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXTRA_KEY = "sk-extra-provider-key-7781"


@asynccontextmanager
async def extra_upstream(**kwargs: Any) -> AsyncIterator[tuple[str, Any]]:
    """A second fake provider that serves only ``db-only-model``."""
    kwargs.setdefault("expected_api_key", EXTRA_KEY)
    runner, url = await start_fake_upstream(
        models=[FakeModel("db-only-model", 32_000)], timeout_s=3, **kwargs
    )
    try:
        yield url, runner.app[STATE]
    finally:
        await runner.cleanup()


async def ask(
    http: aiohttp.ClientSession, node_v1: str, body: dict[str, Any], token: str
) -> tuple[int, int, dict[str, Any]]:
    async with http.post(
        node_v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as r:
        return r.status, int(r.headers.get("X-Routstr-Cost-Msats", "0")), await r.json()


async def listed(http: aiohttp.ClientSession, node_v1: str) -> dict[str, dict[str, Any]]:
    async with http.get(node_v1 + "/models") as r:
        return {m["id"]: m for m in (await r.json())["data"]}


def cost_of(price: Prices, body: dict[str, Any]) -> int:
    """The fake upstream's usage for ``body`` at ``price`` (by ``tests/pricing_oracle.py``)."""
    u = expected_usage(body)
    return price.cost(u["prompt_tokens"], u["completion_tokens"])


async def test_a_provider_added_through_the_api_serves_paid_requests(
    backend: str, mint_url: str, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        extra_upstream() as (extra_url, extra),
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        admin = await admin_headers(node)
        api = node.url + "/admin/api/providers"
        async with http.post(api, json={"name": "extra", "base_url": extra_url}) as r:
            assert r.status == 401  # no admin token
        new = {"name": "extra", "base_url": extra_url + "/", "api_key": EXTRA_KEY, "fee": "0.1"}
        async with http.post(api, json=new, headers=admin) as r:
            assert r.status == 201, await r.text()
            text = await r.text()
            view = await r.json()
        assert EXTRA_KEY not in text
        assert view["api_key_set"] is True and view["api_key_last4"] == "7781"
        assert view["source"] == "database" and view["in_rotation"] and view["base_url"] == extra_url
        models = await listed(http, node.v1)
        assert "db-only-model" in models  # its model list was read at once

        token = await wallet.asend(mint_url, 100)
        body = chat_body("served by the extra provider", model="db-only-model", max_tokens=10)
        status, cost, _ = await ask(http, node.v1, body, token)
        assert status == 200 and extra.by_model["db-only-model"] == 1
        # the pricing file's default (1000 / 3000 sats per Mtok, as listed) plus the provider's 10%
        default = from_listing(models["db-only-model"])
        assert default == Prices(1_000_000, 3_000_000)
        assert default.with_fee("0.1") == Prices(1_100_000, 3_300_000)
        assert cost == cost_of(default.with_fee("0.1"), body)

        # the key is sealed in the database, never there in the clear, and never in an answer
        async with node.db.read() as conn:
            rows = (await conn.execute(select(providers))).all()
            settings = (await conn.execute(select(node_settings))).all()
        assert len(rows) == 1 and EXTRA_KEY not in repr(rows) and EXTRA_KEY not in repr(settings)
        assert unseal(node.app[NODE].auth.secret, KEY_PURPOSE, rows[0].api_key_sealed) == EXTRA_KEY
        async with http.get(api, headers=admin) as r:
            text = await r.text()
            listing = (await r.json())["providers"]
        assert EXTRA_KEY not in text and "sk-upstream-secret" not in text
        assert [(p["name"], p["source"]) for p in listing] == [("upstream", "file"), ("extra", "database")]
        assert listing[0]["api_key_last4"] == "cret" and listing[0]["id"] is None

        # mistakes are 400s in the spec's envelope
        for bad, param in (
            ({"name": "x", "base_url": "ftp://nope"}, "base_url"),
            ({"name": "bad name!", "base_url": extra_url}, "name"),
            ({"name": "x", "base_url": extra_url, "fee": -1}, "fee"),
            ({"name": "x", "base_url": extra_url, "kind": "grpc"}, "kind"),
            ({"name": "x", "base_url": extra_url, "colour": "red"}, "colour"),
            ({"base_url": extra_url}, "name"),
        ):
            async with http.post(api, json=bad, headers=admin) as r:
                err = (await r.json())["error"]
                assert r.status == 400 and err["type"] == "invalid_request", err
                assert err["details"]["param"] == param
        for taken in ("upstream", "extra"):
            async with http.post(api, json={"name": taken, "base_url": extra_url}, headers=admin) as r:
                assert r.status == 400 and (await r.json())["error"]["code"] == "provider_name_taken"
        async with http.put(api + "/upstream", json={"fee": 1}, headers=admin) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "provider_read_only"
        async with http.delete(api + "/999", headers=admin) as r:
            assert r.status == 404

        # switched off: out of rotation and its models off the list; on again: back
        pid = view["id"]
        async with http.put(f"{api}/{pid}", json={"enabled": False}, headers=admin) as r:
            assert r.status == 200 and (await r.json())["in_rotation"] is False
        assert "db-only-model" not in await listed(http, node.v1)
        assert (await ask(http, node.v1, body, token))[0] == 404  # nobody serves it now: not a 5xx
        async with http.put(f"{api}/{pid}", json={"enabled": True, "fee": 0}, headers=admin) as r:
            assert r.status == 200 and (await r.json())["fee"] == "0"
        status, cost, _ = await ask(http, node.v1, body, token)
        assert status == 200 and cost == cost_of(default, body)  # no markup any more
        async with http.delete(f"{api}/{pid}", headers=admin) as r:
            assert r.status == 200
        assert [p.name for p in node.app[NODE].providers] == ["upstream"]
        assert "db-only-model" not in await listed(http, node.v1)
        key_id = await node.app[NODE].auth.key_id(token)
        await node.assert_books_balance(key_id)


async def test_model_prices_switching_off_and_aliases(
    backend: str, mint_url: str, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        admin = await admin_headers(node)
        models_api = node.url + "/admin/api/models"
        token = await wallet.asend(mint_url, 200)
        body = chat_body("price me", max_tokens=10)
        file_price = from_listing((await listed(http, node.v1))["gpt-4o-mini"])
        status, cost, _ = await ask(http, node.v1, body, token)
        assert status == 200 and cost == cost_of(file_price, body)
        assert (await listed(http, node.v1))["gpt-4o-mini"]["sats_pricing"]["prompt"] == 0.002

        new_price = {"prompt_sats_per_mtok": 5000, "completion_sats_per_mtok": "9000.5"}
        async with http.put(models_api + "/gpt-4o-mini", json={"price": new_price}, headers=admin) as r:
            assert r.status == 200, await r.text()
            view = await r.json()
        assert view["price_source"] == "override" and view["msat"]["completion_per_mtok"] == 9_000_500
        assert view["providers"] == ["upstream"] and view["enabled"] is True
        override = (await listed(http, node.v1))["gpt-4o-mini"]
        assert override["sats_pricing"]["prompt"] == 0.005
        assert from_listing(override) == Prices(5_000_000, 9_000_500)
        status, cost, _ = await ask(http, node.v1, body, token)
        assert status == 200 and cost == cost_of(from_listing(override), body) != cost_of(file_price, body)

        for bad in (
            {"price": {"prompt_sats_per_mtok": 1, "prompt_usd_per_mtok": 1}},
            {"price": {"prompt_sats_per_mtok": -1}},
            {"price": {"prompt_sats_per_mtok": "NaN"}},
            {"price": "cheap"},
            {"enabled": "no"},
            {"aliases": "llama"},
        ):
            async with http.put(models_api + "/gpt-4o-mini", json=bad, headers=admin) as r:
                assert r.status == 400 and (await r.json())["error"]["type"] == "invalid_request", bad

        # switched off: not listed, refused like an unknown model, nothing reserved
        key_id = await node.app[NODE].auth.key_id(token)
        before = await node.key_row(key_id)
        async with http.put(models_api + "/gpt-4o-mini", json={"enabled": False}, headers=admin) as r:
            assert (await r.json())["enabled"] is False
        assert "gpt-4o-mini" not in await listed(http, node.v1)
        status, cost, answer = await ask(http, node.v1, body, token)
        assert (status, cost, answer["error"]["code"]) == (404, 0, "model_not_found")
        assert (await node.key_row(key_id)).balance_msat == before.balance_msat
        async with http.put(models_api + "/gpt-4o-mini", json={"enabled": True}, headers=admin) as r:
            assert (await r.json())["price_source"] == "override"  # the price was kept
        assert (await ask(http, node.v1, body, token))[0] == 200

        # an alias: one public id for a provider model, at its own price
        alias = {
            "aliases": ["llama-3.1-8b"],
            "price": {"prompt_sats_per_mtok": 100, "completion_sats_per_mtok": 200},
        }
        async with http.put(models_api + "/house-chat", json=alias, headers=admin) as r:
            view = await r.json()
        assert view["aliases"] == ["llama-3.1-8b"] and view["alias_source"] == "database"
        house = (await listed(http, node.v1))["house-chat"]
        assert from_listing(house) == Prices(100_000, 200_000)
        served = fake_upstream.state.by_model["llama-3.1-8b"]
        aliased = chat_body("through the alias", model="house-chat", max_tokens=5)
        status, cost, _ = await ask(http, node.v1, aliased, token)
        assert status == 200 and fake_upstream.state.by_model["llama-3.1-8b"] == served + 1
        assert cost == cost_of(from_listing(house), aliased)
        # switching the target off switches the alias off (it has no other target)
        async with http.put(models_api + "/llama-3.1-8b", json={"enabled": False}, headers=admin) as r:
            assert r.status == 200
        assert {"house-chat", "llama-3.1-8b"}.isdisjoint(await listed(http, node.v1))
        assert (await ask(http, node.v1, aliased, token))[0] == 404
        async with http.delete(models_api + "/llama-3.1-8b", headers=admin) as r:
            assert r.status == 200
        assert (await ask(http, node.v1, aliased, token))[0] == 200

        async with http.get(models_api, headers=admin) as r:
            models = {m["id"]: m for m in (await r.json())["models"]}
        assert models["gpt-4o-mini"]["price_source"] == "override"
        assert models["gpt-4o"]["price_source"] == "file" and models["gpt-4o"]["currency"] == "usd"
        assert models["llama-3.1-8b"]["price_source"] == "default" and models["llama-3.1-8b"]["listed"]
        assert models["house-chat"]["providers"] == ["upstream"]

        # dropping the override: the pricing file's price again
        async with http.delete(models_api + "/gpt-4o-mini", headers=admin) as r:
            assert r.status == 200
        async with http.delete(models_api + "/gpt-4o-mini", headers=admin) as r:
            assert r.status == 404
        assert (await listed(http, node.v1))["gpt-4o-mini"]["sats_pricing"]["prompt"] == 0.002
        status, cost, _ = await ask(http, node.v1, body, token)
        assert status == 200 and cost == cost_of(file_price, body)
        await node.assert_books_balance(key_id)


@asynccontextmanager
async def another_process(settings: Settings) -> AsyncIterator[str]:
    """A second node on the same database (as a second process of a fleet would be)."""
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_another_process_applies_a_change_within_the_sync_interval(
    backend: str, mint_url: str, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        extra_upstream() as (extra_url, extra),
        running_node(backend, mint_url, fake_upstream, tmp_path, CATALOGUE_SYNC_SECONDS="1") as node,
        another_process(node.settings) as other,
        aiohttp.ClientSession() as http,
    ):
        admin = await admin_headers(node)
        assert (await listed(http, other + "/v1"))["gpt-4o-mini"]["sats_pricing"]["prompt"] == 0.002
        price = {"price": {"prompt_sats_per_mtok": 4000, "completion_sats_per_mtok": 8000}}
        async with http.put(node.url + "/admin/api/models/gpt-4o-mini", json=price, headers=admin) as r:
            assert r.status == 200
        new = {"name": "extra", "base_url": extra_url, "api_key": EXTRA_KEY}
        async with http.post(node.url + "/admin/api/providers", json=new, headers=admin) as r:
            assert r.status == 201
        changed_at = time.monotonic()
        while True:  # the new price, and the new provider's models (fetched once it is synced)
            models = await listed(http, other + "/v1")
            if models["gpt-4o-mini"]["sats_pricing"]["prompt"] == 0.004 and "db-only-model" in models:
                break
            assert time.monotonic() - changed_at < 3, "the other process did not pick the change up"
            await asyncio.sleep(0.1)
        token = await wallet.asend(mint_url, 50)
        body = chat_body("on the other process", model="db-only-model", max_tokens=5)
        status, _, _ = await ask(http, other + "/v1", body, token)
        assert status == 200 and extra.by_model["db-only-model"] == 1


async def test_testing_a_model_at_a_live_and_a_dead_provider(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        extra_upstream() as (extra_url, extra),
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        admin = await admin_headers(node)
        api = node.url + "/admin/api"

        served = fake_upstream.state.by_model["gpt-4o-mini"]
        async with http.post(api + "/models/gpt-4o-mini/test", headers=admin) as r:
            result = await r.json()
        assert r.status == 200 and result["ok"] is True and result["status"] == 200, result
        assert result["provider"] == "upstream" and result["error"] is None and result["latency_ms"] > 0
        assert fake_upstream.state.by_model["gpt-4o-mini"] == served + 1
        assert fake_upstream.state.last_body["max_tokens"] == 1

        dead = {"name": "dead", "base_url": "http://127.0.0.1:9/v1", "models": ["db-only-model"]}
        async with http.post(api + "/providers", json=dead, headers=admin) as r:
            assert r.status == 201
        async with http.post(api + "/models/db-only-model/test", headers=admin) as r:
            result = await r.json()
        assert result["ok"] is False and result["status"] is None and "reached" in result["error"]

        # a wrong key: the provider's refusal, with the key kept out of the answer
        wrong = {"name": "wrongkey", "base_url": extra_url, "api_key": "sk-wrong-key-0000", "enabled": False}
        async with http.post(api + "/providers", json=wrong, headers=admin) as r:
            assert r.status == 201
        async with http.post(
            api + "/models/db-only-model/test", json={"provider": "wrongkey"}, headers=admin
        ) as r:
            text = await r.text()
            result = await r.json()
        assert result["ok"] is False and result["status"] == 401 and "sk-wrong-key-0000" not in text
        right = {"name": "right", "base_url": extra_url, "api_key": EXTRA_KEY, "enabled": False}
        async with http.post(api + "/providers", json=right, headers=admin) as r:
            assert r.status == 201
        async with http.post(
            api + "/models/db-only-model/test", json={"provider": "right"}, headers=admin
        ) as r:
            result = await r.json()
        assert result["ok"] is True and extra.by_model["db-only-model"] == 1  # switched off, still testable
        async with http.post(api + "/models/nobody-serves-this/test", headers=admin) as r:
            assert r.status == 404
        async with node.db.read() as conn:  # nothing was billed: no key, no ledger row
            assert (await conn.execute(select(ledger))).first() is None


async def test_a_provider_changed_mid_stream_finishes_the_stream_then_closes_its_client(
    backend: str, mint_url: str, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        extra_upstream(expected_api_key=None) as (extra_url, extra),
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        admin = await admin_headers(node)
        managed = node.app[MANAGED]
        managed.retire_grace_s, managed.reap_every_s = 0.0, 0.1  # close as soon as nothing uses it
        new = {"name": "extra", "base_url": extra_url, "api_key": "sk-first-key-1111"}
        async with http.post(node.url + "/admin/api/providers", json=new, headers=admin) as r:
            pid = (await r.json())["id"]
        old_session = node.app[NODE].providers[-1].client.session
        token = await wallet.asend(mint_url, 100)
        words = " ".join(f"word{i}" for i in range(24))
        body = chat_body(
            words, model="db-only-model", max_tokens=100, stream=True, fake_behavior="slow-stream"
        )
        body["fake_delay_ms"] = 150
        async with http.post(
            node.v1 + "/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 200
            chunks = [await r.content.readline()]
            async with http.put(
                node.url + f"/admin/api/providers/{pid}",
                json={"api_key": "sk-second-key-2222"},
                headers=admin,
            ) as changed:
                assert changed.status == 200 and (await changed.json())["api_key_last4"] == "2222"
            assert node.app[NODE].providers[-1].client.session is not old_session
            await asyncio.sleep(0.5)  # several reaper rounds while the stream still holds the connection
            assert not old_session.closed
            chunks += [line async for line in r.content]
        text = b"".join(chunks).decode()
        assert text.rstrip().endswith("data: [DONE]") and "word23" in text
        key_id = await node.app[NODE].auth.key_id(token)
        row = await node.assert_books_balance(key_id)
        assert row.total_requests == 1 and row.total_spent_msat > 0 and row.reserved_msat == 0
        deadline = time.monotonic() + 3
        while not old_session.closed:
            assert time.monotonic() < deadline, "the replaced client was never closed"
            await asyncio.sleep(0.05)
        status, _, _ = await ask(http, node.v1, chat_body("new key", model="db-only-model"), token)
        assert status == 200 and extra.last_authorization == "Bearer sk-second-key-2222"


async def test_every_admin_route_is_in_the_openapi_document_under_the_admin_tag():
    from routstr.api.openapi import openapi_document
    from routstr.config import load_settings

    env = {"UPSTREAM_BASE_URL": "http://127.0.0.1:9/v1", "CASHU_MINTS": "http://127.0.0.1:9"}
    app = create_app(load_settings(env, env_file=None))  # routes only: nothing starts
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/admin/api/") and route.method not in ("HEAD", "OPTIONS"):
            routes.add((re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path), route.method.lower()))
    documented = {
        (path, method)
        for path, ops in openapi_document()["paths"].items()
        for method, op in ops.items()
        if op.get("tags") == ["admin"] and op.get("security") == [{"adminToken": []}]
    }
    assert len(routes) >= 18 and routes <= documented, routes - documented
