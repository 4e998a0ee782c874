"""/metrics on a real node: counters that match the requests made and the ledger, the admin token,
the separate address, the X-Routstr-Overhead-Ms header, and JSON log lines of real requests."""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import func, select

from routstr.devtools.nutshell import free_port
from routstr.devtools.test_wallet import TestWallet
from routstr.logs import log_client_ips, make_handler
from routstr.metrics.trace import OVERHEAD_HEADER
from routstr.node import NODE
from routstr.operator.tokens import admin_token_hash, new_admin_token
from routstr.storage import admin_store
from routstr.storage.schema import ledger
from tests.conftest import UPSTREAM_KEY, NodeHandle, Upstream, chat_body, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHAT = "chat_completions"


async def admin_header(node: NodeHandle) -> dict[str, str]:
    """A fresh admin token, stored as ``routstr admin-token create`` stores it (its HMAC)."""
    token = new_admin_token()
    async with node.db.write() as conn:
        await admin_store.add_token(conn, admin_token_hash(node.app[NODE].auth.secret, token), "metrics")
    return {"Authorization": f"Bearer {token}"}


async def new_key(node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint_url: str) -> str:
    token = await wallet.asend(mint_url, 300)
    async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["api_key"])


def parse(text: str) -> dict[str, list[Sample]]:
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def value(families: dict[str, list[Sample]], family: str, sample: str, **labels: str) -> float:
    found = [s.value for s in families.get(family, []) if s.name == sample and s.labels == labels]
    assert len(found) <= 1
    return found[0] if found else 0.0


async def scrape(http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> Any:
    async with http.get(url, headers=headers or {}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        return parse(await r.text())


async def stream_cost(resp: aiohttp.ClientResponse) -> int:
    """usage.cost.msats from a chat stream's usage event."""
    cost = None
    async for line in resp.content:
        if line.startswith(b"data: {") and b'"cost"' in line:
            cost = orjson.loads(line[6:])["usage"]["cost"]["msats"]
    assert cost is not None
    return int(cost)


async def test_metrics_count_the_requests_made_and_the_ledgers_charges(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        key = await new_key(node, http, wallet, mint_url)
        bearer = {"Authorization": f"Bearer {key}"}
        url = node.v1 + "/chat/completions"
        header_costs = []
        for i in range(3):
            async with http.post(url, json=chat_body(f"json number {i}"), headers=bearer) as r:
                assert r.status == 200
                header_costs.append(int(r.headers["X-Routstr-Cost-Msats"]))
        body = chat_body("stream me", stream=True, stream_options={"include_usage": True})
        for _ in range(2):
            async with http.post(url, json=body, headers=bearer) as r:
                assert r.status == 200
                header_costs.append(await stream_cost(r))
        async with http.post(url, json=chat_body(model="fail-500"), headers=bearer) as r:
            assert r.status == 502  # the upstream failed: nothing charged
        async with http.post(url, json=chat_body()) as r:
            assert r.status == 401  # no key

        async with http.get(node.url + "/metrics") as r:
            assert r.status == 401
        async with http.get(node.url + "/metrics", headers=bearer) as r:
            assert r.status == 401  # a user's key is not an admin token
        admin = await admin_header(node)
        f = await scrape(http, node.url + "/metrics", admin)

        def requests(model: str, status: int) -> float:
            labels = {"endpoint": CHAT, "model": model, "status": str(status)}
            return value(f, "routstr_requests", "routstr_requests_total", **labels)

        assert requests("gpt-4o-mini", 200) == 5
        assert requests("", 502) == 1 and requests("", 401) == 1  # no provider took them: no model
        assert sum(s.value for s in f["routstr_requests"] if s.labels["endpoint"] == CHAT) == 7
        for family in ("routstr_request_duration_seconds", "routstr_overhead_seconds"):
            assert value(f, family, family + "_count", endpoint=CHAT) == 7
            assert value(f, family, family + "_bucket", endpoint=CHAT, le="+Inf") == 7
        assert (
            value(
                f,
                "routstr_upstream_errors",
                "routstr_upstream_errors_total",
                provider="upstream",
                kind="http_500",
            )
            == 1
        )
        assert value(f, "routstr_reservations_in_flight", "routstr_reservations_in_flight") == 0

        async with node.db.read() as conn:
            charged, prompt, completion = (
                await conn.execute(
                    select(
                        func.sum(ledger.c.amount_msat),
                        func.sum(ledger.c.prompt_tokens),
                        func.sum(ledger.c.completion_tokens),
                    ).where(ledger.c.kind == "charge")
                )
            ).one()
        msat = value(f, "routstr_charged_msat", "routstr_charged_msat_total", model="gpt-4o-mini")
        assert msat == charged == sum(header_costs) > 0
        tokens = "routstr_tokens_total"
        assert value(f, "routstr_tokens", tokens, model="gpt-4o-mini", kind="prompt") == prompt > 0
        assert value(f, "routstr_tokens", tokens, model="gpt-4o-mini", kind="completion") == completion > 0

        async with http.get(node.url + "/admin/api/books", headers=admin) as r:
            [books] = (await r.json())["books"]
        where = {"mint": mint_url, "unit": "sat"}
        assert value(f, "routstr_wallet_msat", "routstr_wallet_msat", **where) == books["wallet_msat"] > 0
        assert value(f, "routstr_liabilities_msat", "routstr_liabilities_msat", **where) == books["owed_msat"]
        assert books["owed_msat"] == 300_000 - charged
        assert value(f, "routstr_mint_up", "routstr_mint_up", mint=mint_url) == 1
        assert f["process_resident_memory_bytes"][0].value > 0


async def test_metrics_on_a_separate_address_without_a_token(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    port = free_port()
    async with (
        running_node(
            backend, mint_url, fake_upstream, tmp_path, METRICS_HOST="127.0.0.1", METRICS_PORT=str(port)
        ) as node,
        aiohttp.ClientSession() as http,
    ):
        async with http.post(node.v1 + "/chat/completions", json=chat_body()) as r:
            assert r.status == 401
        f = await scrape(http, f"http://127.0.0.1:{port}/metrics")
        labels = {"endpoint": CHAT, "model": "", "status": "401"}
        assert value(f, "routstr_requests", "routstr_requests_total", **labels) == 1
        async with http.get(node.url + "/metrics") as r:
            assert r.status == 401  # the main port still wants the admin token
    with pytest.raises(aiohttp.ClientConnectionError):  # closed with the node
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics"):
            pass


async def test_overhead_header_is_the_nodes_time_without_the_upstreams(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    bearer = {"Authorization": f"Bearer {await new_key(node, http, wallet, mint_url)}"}
    url = node.v1 + "/chat/completions"
    # the fake upstream waits 300 ms before a non-streamed answer; none of that is the node's time
    started = time.perf_counter()
    async with http.post(url, json=chat_body(fake_delay_ms=300), headers=bearer) as r:
        assert r.status == 200
        overhead = float(r.headers[OVERHEAD_HEADER])
        await r.read()
    total_ms = (time.perf_counter() - started) * 1000
    assert total_ms >= 300 and 0 <= overhead < total_ms - 250
    # a stream: the node's time until its headers went out; the stream then takes 100 ms per event
    body = chat_body("a b c d e f", stream=True, fake_delay_ms=100)
    started = time.perf_counter()
    async with http.post(url, json=body, headers=bearer) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        overhead = float(r.headers[OVERHEAD_HEADER])
        await r.read()
    total_ms = (time.perf_counter() - started) * 1000
    assert total_ms >= 300 and 0 <= overhead < total_ms - 250
    # an error the node answers itself carries it too; other endpoints do not
    async with http.post(url, json=chat_body(max_tokens=-5), headers=bearer) as r:
        assert r.status == 400 and float(r.headers[OVERHEAD_HEADER]) >= 0
    async with http.get(node.v1 + "/models") as r:
        assert r.status == 200 and OVERHEAD_HEADER not in r.headers


async def test_json_log_lines_carry_the_request_id_and_no_secret(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    key = await new_key(node, http, wallet, mint_url)
    out = io.StringIO()
    handler = make_handler("json", out)
    logger = logging.getLogger("routstr")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)  # the middleware's per-request line is at DEBUG
    try:
        for rid, ips in (("metrics-log-1", False), ("metrics-log-2", True)):
            log_client_ips(ips)
            async with http.post(
                node.v1 + "/chat/completions",
                json=chat_body("my secret prompt text"),
                headers={"Authorization": f"Bearer {key}", "X-Request-ID": rid},
            ) as r:
                assert r.status == 200
    finally:
        log_client_ips(False)
        logger.removeHandler(handler)
        logger.setLevel(level)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    mine = {
        line["request_id"]: line
        for line in lines
        if str(line.get("request_id", "")).startswith("metrics-log")
    }
    assert mine["metrics-log-1"]["logger"] == "routstr.api.middleware"
    assert "POST chat_completions answered 200" in mine["metrics-log-1"]["message"]
    assert "client_ip" not in mine["metrics-log-1"]
    assert mine["metrics-log-2"]["client_ip"] == "127.0.0.1"
    text = out.getvalue()
    for secret in (key, key[3:], UPSTREAM_KEY, "my secret prompt text"):
        assert secret not in text
