"""Three node processes on one PostgreSQL database and one Redis: whichever process a request lands
on, no overspend, a token is credited once, the ledger explains every balance, rate limits count
fleet-wide, and a process killed mid-request leaves nothing stuck."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from routstr.devtools.test_wallet import TestWallet
from routstr.storage.books import ledger_mismatches
from routstr.storage.db import Database
from tests.conftest import PRICING, Upstream, _backends, chat_body, fresh_database, node_env
from tests.node.node_process import NodeProcess, assert_audit_passes

pytestmark = pytest.mark.asyncio(loop_scope="session")
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest_asyncio.fixture(loop_scope="session")
async def fleet(tmp_path: Path, mint_url: str, fake_upstream: Upstream) -> AsyncIterator[list[NodeProcess]]:
    if "postgres" not in _backends():
        if os.environ.get("CI"):
            pytest.fail("the fleet test needs PostgreSQL (TEST_POSTGRES_URL)")
        pytest.skip("set TEST_POSTGRES_URL to run the fleet test")
    pricing = tmp_path / "pricing.toml"
    pricing.write_text(PRICING)
    async with fresh_database("postgres", tmp_path) as db_url:
        env = node_env(
            mint_url,
            fake_upstream.url,
            db_url,
            pricing,
            SECRET_KEY="fleet-secret",
            REDIS_URL=REDIS_URL,
            REDIS_PREFIX=f"test:fleet:{uuid.uuid4().hex}",
            RATE_LIMIT_REQUESTS_PER_MINUTE="60",
            RATE_LIMIT_CONCURRENT="1000",
            RESERVATION_TTL_SECONDS="2",
            DB_POOL_SIZE="4",  # the CI server allows 100 connections, shared with the rest of the suite
        )
        nodes = [NodeProcess(env, tmp_path / f"node{i}.log") for i in range(3)]
        try:
            await asyncio.gather(*(asyncio.to_thread(n.start) for n in nodes))
            yield nodes
        finally:
            for n in nodes:
                n.stop()


async def fresh_minute(needed_s: float = 25.0) -> None:
    left = 60 - time.time() % 60
    if left < needed_s:
        await asyncio.sleep(left + 0.2)


async def test_a_fleet_keeps_one_book(fleet: list[NodeProcess], wallet: TestWallet, mint_url: str):
    await fresh_minute()
    async with aiohttp.ClientSession() as http:
        # the same fresh token at all three processes at once: one credit
        token = await wallet.asend(mint_url, 40)
        bearer = {"Authorization": f"Bearer {token}"}

        async def info(node: NodeProcess) -> tuple[int, dict[str, int]]:
            async with http.get(node.url + "/v1/balance/info", headers=bearer) as r:
                return r.status, await r.json()

        seen = await asyncio.gather(*(info(n) for n in fleet for _ in range(3)))
        assert {s for s, _ in seen} == {200} and {b["balance"] for _, b in seen} == {40_000}, seen

        # 300 requests over the three processes on keys funded for fewer
        keys = [await wallet.asend(mint_url, 12) for _ in range(3)]
        body = chat_body("tell me everything " * 30, max_tokens=150)

        async def spend(i: int) -> int:
            node, key = fleet[i % 3], keys[random.randrange(3)]
            async with http.post(
                node.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            ) as r:
                await r.read()
                return r.status

        statuses = Counter(await asyncio.gather(*(spend(i) for i in range(300))))
        assert set(statuses) <= {200, 402, 429}, statuses
        assert statuses[200] > 0 and statuses[402] + statuses[429] > 0, statuses  # funded for fewer
        # rate limits are fleet-wide: 60 a minute per key, all processes together (counted per process,
        # each process would let its ~33 requests per key through and none would be refused)
        assert statuses[200] + statuses[402] <= 3 * 60 and statuses[429] >= 300 - 3 * 60, statuses

    db = Database(fleet[0].env["DATABASE_URL"])
    try:
        async with db.read() as conn:
            mismatches = await ledger_mismatches(conn)
        assert mismatches == []  # the ledger sums to every balance
    finally:
        await db.close()
    await assert_audit_passes(fleet[0])


async def test_a_killed_process_leaves_nothing_stuck(
    fleet: list[NodeProcess], wallet: TestWallet, mint_url: str
):
    token = await wallet.asend(mint_url, 50)
    bearer = {"Authorization": f"Bearer {token}"}
    victim, *others = fleet
    async with aiohttp.ClientSession() as http:
        async with http.get(victim.url + "/v1/balance/info", headers=bearer) as r:
            assert (await r.json())["balance"] == 50_000
        slow = chat_body(max_tokens=50, stream=True, fake_behavior="slow-stream", fake_delay_ms=500)
        async with http.post(victim.url + "/v1/chat/completions", json=slow, headers=bearer) as r:
            assert r.status == 200
            await r.content.readany()  # mid-stream: the reservation is held
            assert victim.proc is not None
            victim.proc.send_signal(signal.SIGKILL)
        assert victim.wait_killed() == -signal.SIGKILL
        for node in others:  # the fleet keeps serving
            async with http.post(
                node.url + "/v1/chat/completions", json=chat_body(max_tokens=5), headers=bearer
            ) as r:
                assert r.status == 200
        for _ in range(100):  # the sweeper of a live process releases the dead one's reservation
            async with http.get(others[0].url + "/v1/balance/info", headers=bearer) as r:
                info = await r.json()
            if info["reserved"] == 0:
                break
            await asyncio.sleep(0.1)
        assert info["reserved"] == 0
        assert info["balance"] + info["total_spent"] == 50_000  # the killed request cost nothing
    await assert_audit_passes(others[0])
