"""Per-key rate limits on the node: X-RateLimit-* on answers, 429 rate_limit_exceeded with Retry-After
past a limit, and nothing charged for a refused request."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.conftest import Upstream, chat_body, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def fresh_minute(needed_s: float = 15.0) -> None:
    """Start in a minute window with ``needed_s`` left (the windows are the clock's minutes)."""
    left = 60 - time.time() % 60
    if left < needed_s:
        await asyncio.sleep(left + 0.2)


async def test_requests_per_minute_and_concurrency(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    limits = {"RATE_LIMIT_REQUESTS_PER_MINUTE": "5", "RATE_LIMIT_CONCURRENT": "2"}
    await fresh_minute()
    async with running_node(backend, mint_url, fake_upstream, tmp_path, **limits) as node:
        async with aiohttp.ClientSession() as http:
            token = await wallet.asend(mint_url, 100)
            key = {"Authorization": f"Bearer {token}"}
            slow = chat_body(max_tokens=5, stream=True, fake_behavior="slow-stream", fake_delay_ms=150)

            async def call(body: dict[str, object]) -> int:
                async with http.post(node.v1 + "/chat/completions", json=body, headers=key) as r:
                    await r.read()
                    return r.status

            statuses = await asyncio.gather(*(call(slow) for _ in range(3)))
            assert sorted(statuses) == [200, 200, 429]  # two at a time
            remaining = []
            for _ in range(3):  # 2 (+1 refused, not counted) used so far: 3 left this minute
                async with http.post(
                    node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=key
                ) as r:
                    assert r.status == 200
                    assert r.headers["X-RateLimit-Limit"] == "5"
                    remaining.append(int(r.headers["X-RateLimit-Remaining"]))
            assert remaining == [2, 1, 0]
            async with http.get(node.v1 + "/balance/info", headers=key) as r:
                before = await r.json()
            async with http.post(
                node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=key
            ) as r:
                assert r.status == 429
                err = (await r.json())["error"]
                assert err["type"] == "rate_limit_exceeded" and err["code"] == "rate_limit_exceeded"
                assert 0 < int(r.headers["Retry-After"]) <= 60 and r.headers["X-RateLimit-Remaining"] == "0"
            async with http.get(node.v1 + "/balance/info", headers=key) as r:
                after = await r.json()
            assert (
                after["balance"] == before["balance"] and after["total_requests"] == before["total_requests"]
            )
