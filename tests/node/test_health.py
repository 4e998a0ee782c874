"""/health says the process answers; /ready says it can take paid requests (database, a mint, a provider).

The node runs on the test's event loop, so nothing here blocks it: the mint is started and stopped in
a thread, and readiness is polled until it reaches the state expected (bounded by a deadline that only
a broken node reaches) instead of being read once after a fixed sleep.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from routstr.devtools.nutshell import NutshellMint, free_port
from tests.conftest import NodeHandle, Upstream, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")

# The node asks its mints every MINT_HEALTH_SECONDS; short here, so a change shows within a poll or two.
FAST_MINT_CHECKS = {"MINT_HEALTH_SECONDS": "0.1"}
# Far beyond what a working node needs (a few checks), even on a loaded machine: reaching it is a failure.
DEADLINE_S = 30.0


async def ready_until(http: aiohttp.ClientSession, url: str, status: int) -> dict[str, Any]:
    """Poll /ready until it answers ``status`` and return that body; fail with the last one at the
    deadline. Each body is read whole from one answer, so what the caller asserts is one snapshot."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        async with http.get(url + "/ready") as r:
            got, body = r.status, await r.json()
        if got == status:
            return dict(body)
        if loop.time() > deadline:
            pytest.fail(f"/ready still {got}, not {status}, after {DEADLINE_S}s: {body}")
        await asyncio.sleep(0.05)


async def test_a_working_node_is_healthy_and_ready(node: NodeHandle, http: aiohttp.ClientSession) -> None:
    async with http.get(node.url + "/health") as r:
        assert r.status == 200 and (await r.json())["status"] == "ok"
    async with http.get(node.url + "/ready") as r:
        body = await r.json()
        assert r.status == 200, body
    assert body["checks"]["database"]["ok"] and body["checks"]["providers"]["usable"] == {"upstream": True}


async def test_not_ready_without_a_provider(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path
) -> None:
    dead = Upstream(f"http://127.0.0.1:{free_port()}/v1", fake_upstream.state)  # nothing listens there
    async with running_node(backend, mint_url, dead, tmp_path) as node, aiohttp.ClientSession() as http:
        # the model list is fetched (and fails) before the node serves, so the first answer says so
        async with http.get(node.url + "/ready") as r:
            body = await r.json()
        assert r.status == 503 and body["checks"]["providers"] == {"ok": False, "usable": {"upstream": False}}
        assert body["checks"]["mints"]["ok"] and body["checks"]["database"]["ok"]  # only the provider
        async with http.get(node.url + "/health") as r:
            assert r.status == 200  # alive all the same


async def test_readiness_follows_the_mint_down_and_back(
    backend: str, nutshell_python: Path, fake_upstream: Upstream, tmp_path: Path
) -> None:
    mint = NutshellMint("ready-mint")  # its own: the session's mint serves the other tests
    try:
        await asyncio.to_thread(mint.start)
        async with (
            running_node(backend, mint.url, fake_upstream, tmp_path, **FAST_MINT_CHECKS) as node,
            aiohttp.ClientSession() as http,
        ):
            body = await ready_until(http, node.url, 200)
            assert body["checks"]["mints"] == {"ok": True, "up": {mint.url: True}}

            # once stop() returns the port is closed: every check the node starts from then on finds
            # the mint down (one already in flight may still mark it up, the next one corrects it)
            await asyncio.to_thread(mint.stop)
            body = await ready_until(http, node.url, 503)
            assert body["checks"]["mints"] == {"ok": False, "up": {mint.url: False}}
            assert body["checks"]["database"]["ok"] and body["checks"]["providers"]["ok"]  # only the mint
            async with http.get(node.url + "/health") as r:
                assert r.status == 200  # alive all the same

            await asyncio.to_thread(mint.start)  # same port and keys: the same mint, back
            body = await ready_until(http, node.url, 200)
            assert body["checks"]["mints"] == {"ok": True, "up": {mint.url: True}}
    finally:
        await asyncio.to_thread(mint.cleanup)
