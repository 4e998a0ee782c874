"""The HTTP surface around the pipeline: request ids, limits, gzip, CORS, docs, info and models."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import NodeHandle, chat_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_request_id_is_echoed_or_made(node: NodeHandle, http: aiohttp.ClientSession):
    async with http.get(node.v1 + "/info", headers={"X-Request-ID": "client-id-42"}) as r:
        assert r.headers["X-Request-ID"] == "client-id-42"
    async with http.get(node.v1 + "/info") as r:
        assert len(r.headers["X-Request-ID"]) == 32
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(), headers={"X-Request-ID": "e1"}
    ) as r:
        assert r.status == 401 and r.headers["X-Request-ID"] == "e1"


async def test_body_over_limit_is_413_in_envelope(node: NodeHandle, http: aiohttp.ClientSession):
    big = (
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"' + b"x" * (11 * 1024 * 1024) + b'"}]}'
    )
    headers = {"Authorization": "Bearer sk-" + "1" * 32, "Content-Type": "application/json"}
    async with http.post(node.v1 + "/chat/completions", data=big, headers=headers) as r:
        assert r.status == 413
        err = (await r.json())["error"]
    assert err["type"] == "invalid_request" and err["code"] == "payload_too_large"


async def test_gzip_for_large_json_not_for_small(node: NodeHandle, http: aiohttp.ClientSession):
    async with http.get(node.url + "/openapi.json", headers={"Accept-Encoding": "gzip"}) as r:
        assert r.headers.get("Content-Encoding") == "gzip"
        assert (await r.json())["openapi"].startswith("3.")
    async with http.get(node.v1 + "/info", headers={"Accept-Encoding": "gzip"}) as r:
        assert "Content-Encoding" not in r.headers
    async with http.get(node.url + "/openapi.json", headers={"Accept-Encoding": "identity"}) as r:
        assert "Content-Encoding" not in r.headers


async def test_cors_preflight_and_simple(node: NodeHandle, http: aiohttp.ClientSession):
    pre = {
        "Origin": "https://chat.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with http.options(node.v1 + "/chat/completions", headers=pre) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://chat.example")
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        assert "AUTHORIZATION" in r.headers["Access-Control-Allow-Headers"].upper()
        assert r.headers["Access-Control-Max-Age"] == "86400"
    async with http.get(node.v1 + "/models", headers={"Origin": "https://chat.example"}) as r:
        assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://chat.example")


async def test_docs_are_served_without_a_cdn(node: NodeHandle, http: aiohttp.ClientSession):
    async with http.get(node.url + "/openapi.json") as r:
        doc = await r.json()
    assert "/v1/chat/completions" in doc["paths"] and "/v1/balance/refund" in doc["paths"]
    for page, asset in (
        ("/docs", "/static/swagger/swagger-ui-bundle.js"),
        ("/redoc", "/static/redoc.standalone.js"),
    ):
        async with http.get(node.url + page) as r:
            html = await r.text()
        assert r.status == 200 and asset in html and "https://" not in html
        async with http.get(node.url + asset) as r:
            assert r.status == 200 and len(await r.read()) > 100_000


async def test_info(node: NodeHandle, http: aiohttp.ClientSession, mint_url: str):
    async with http.get(node.v1 + "/info") as r:
        info = await r.json()
    assert info["name"] == "test node"
    assert info["mints"] == [mint_url]
    assert {"description", "version", "http_url", "onion_url"} <= set(info)


async def test_models_in_openrouter_schema_with_sats_pricing(node: NodeHandle, http: aiohttp.ClientSession):
    async with http.get(node.v1 + "/models") as r:
        data = (await r.json())["data"]
    by_id = {m["id"]: m for m in data}
    m = by_id["gpt-4o-mini"]
    assert m["context_length"] == 128_000
    # 2000 sats per million prompt tokens = 0.002 sat per token; at 100,000 USD/BTC that is 2e-9 USD
    assert m["sats_pricing"]["prompt"] == pytest.approx(0.002)
    assert m["sats_pricing"]["completion"] == pytest.approx(0.007)
    # numbers, not strings: Routstr Core reading this node as its upstream parses them as floats
    assert m["pricing"]["prompt"] == pytest.approx(2e-6)
    assert m["pricing"]["completion"] == pytest.approx(7e-6)
    assert all(isinstance(v, (int, float)) for v in m["pricing"].values())
    assert m["sats_pricing"]["max_cost"] > 0
    # a model the upstream lists but the pricing file does not: the default price
    assert by_id["llama-3.1-8b"]["sats_pricing"]["prompt"] == pytest.approx(0.001)
    assert by_id["gpt-4o"]["pricing"]["request"] == pytest.approx(0.001)


async def test_unknown_route_and_method(node: NodeHandle, http: aiohttp.ClientSession):
    async with http.get(node.v1 + "/nope") as r:
        assert r.status == 404 and (await r.json())["error"]["type"] == "not_found"
    async with http.get(node.v1 + "/chat/completions") as r:
        assert r.status == 405 and "error" in await r.json()
