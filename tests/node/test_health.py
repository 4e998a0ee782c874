"""/health says the process answers; /ready says it can take paid requests (database, a mint, a provider)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from routstr.api.state import NODE
from routstr.devtools.nutshell import NutshellMint, free_port
from tests.conftest import NodeHandle, Upstream, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_working_node_is_healthy_and_ready(node: NodeHandle, http: aiohttp.ClientSession):
    async with http.get(node.url + "/health") as r:
        assert r.status == 200 and (await r.json())["status"] == "ok"
    async with http.get(node.url + "/ready") as r:
        body = await r.json()
        assert r.status == 200, body
    assert body["checks"]["database"]["ok"] and body["checks"]["providers"]["usable"] == {"upstream": True}


async def test_not_ready_without_a_mint_or_a_provider(
    backend: str, nutshell_python: Path, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    dead = Upstream(f"http://127.0.0.1:{free_port()}/v1", fake_upstream.state)  # nothing listens there
    async with (
        running_node(backend, mint_url, dead, tmp_path / "a") as node,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(node.url + "/ready") as r:
            body = await r.json()
        assert r.status == 503 and body["checks"]["providers"] == {"ok": False, "usable": {"upstream": False}}
        async with http.get(node.url + "/health") as r:
            assert r.status == 200  # alive all the same
    with NutshellMint("ready-mint") as mint:
        async with (
            running_node(backend, mint.url, fake_upstream, tmp_path / "b") as node,
            aiohttp.ClientSession() as http,
        ):
            async with http.get(node.url + "/ready") as r:
                assert r.status == 200
            # stopped off the loop, so a health check the node's own job had in flight ends first
            # (one whose answer came in just before the stop would otherwise mark the mint up again
            # after ours); the node then finds the dead mint down at its next check, whoever runs it
            await asyncio.to_thread(mint.stop)
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                await node.app[NODE].mints.check_health()
                async with http.get(node.url + "/ready") as r:
                    body = await r.json()
                if r.status == 503 or asyncio.get_running_loop().time() > deadline:
                    break
            assert r.status == 503 and body["checks"]["mints"] == {"ok": False, "up": {mint.url: False}}
