"""Dashboard logins cannot lock the operator out (issue 14, item 8), against a real ``routstr serve``
behind a trusted reverse proxy (``TRUSTED_PROXIES``: the test's own loopback address): failures make
one client address wait longer and longer, never for good, and never any other address."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.limits.conftest import REDIS_URL, require_redis
from tests.node.node_process import NodeProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "operator-password-1"
ATTACKER, OPERATOR = "203.0.113.7", "198.51.100.20"


def browser() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def log_in(
    node: NodeProcess, http: aiohttp.ClientSession, password: str, forwarded_for: str | None = None
) -> tuple[int, int]:
    """(status, Retry-After or 0) of one login through the proxy as ``forwarded_for``."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with http.post(
        node.url + "/admin/login",
        data={"password": password, "next": "/admin/"},
        headers=headers,
        allow_redirects=False,
    ) as r:
        await r.read()
        return r.status, int(r.headers.get("Retry-After", "0"))


async def test_failures_back_off_one_address_and_never_lock_out_another(node_proc: NodeProcess):
    node = node_proc
    node.env.update(ADMIN_PASSWORD=PASSWORD, TRUSTED_PROXIES="127.0.0.1/32, ::1")
    await asyncio.to_thread(node.start)
    async with browser() as attacker, browser() as operator:
        seen = [await log_in(node, attacker, f"guess-{i}", f"198.18.0.1, {ATTACKER}") for i in range(10)]
        statuses = [s for s, _ in seen]
        assert statuses[0] == 401 and set(statuses) <= {401, 429}, seen
        assert 429 in statuses, seen  # the address is waiting now…
        assert all(0 < wait <= 300 for s, wait in seen if s == 429), seen  # …a while, not for good
        # the same client's real address decides, whatever it puts in front of it
        assert (await log_in(node, attacker, PASSWORD, f"{OPERATOR}, {ATTACKER}"))[0] == 429

        # the operator at another address (through the same proxy) logs in at once
        assert (await log_in(node, operator, PASSWORD, OPERATOR))[0] == 303
        async with operator.get(node.url + "/admin/settings", allow_redirects=False) as r:
            assert r.status == 200
        # and so does a direct client (the proxy's own address, no X-Forwarded-For)
        async with browser() as direct:
            assert (await log_in(node, direct, PASSWORD))[0] == 303

        # the attacked address itself gets in with the right password once its wait is over
        for _ in range(5):
            status, wait = await log_in(node, attacker, PASSWORD, ATTACKER)
            if status != 429:
                break
            assert 0 < wait <= 8  # 1 s after the sixth failure, 2 s after the seventh…
            await asyncio.sleep(wait + 0.2)
        assert status == 303
        # a success forgets the failures: a typo now costs no wait
        async with browser() as again:
            assert (await log_in(node, again, "typo", ATTACKER))[0] == 401
            assert (await log_in(node, again, PASSWORD, ATTACKER))[0] == 303


async def test_forwarded_for_counts_only_from_a_trusted_proxy(node_proc: NodeProcess):
    node = node_proc
    node.env.update(ADMIN_PASSWORD=PASSWORD)  # TRUSTED_PROXIES unset: X-Forwarded-For is ignored
    await asyncio.to_thread(node.start)
    async with browser() as http:
        seen = [await log_in(node, http, f"guess-{i}", f"192.0.2.{i}") for i in range(10)]
        assert 429 in [s for s, _ in seen], seen  # a made-up header does not buy fresh addresses


async def test_a_fleet_shares_the_backoff_through_redis(node_proc: NodeProcess, tmp_path: Path):
    require_redis()
    node_proc.env.update(
        ADMIN_PASSWORD=PASSWORD,
        TRUSTED_PROXIES="127.0.0.1",
        REDIS_URL=REDIS_URL,
        REDIS_PREFIX=f"test:login:{uuid.uuid4().hex[:10]}",
    )
    other = NodeProcess(dict(node_proc.env), tmp_path / "node2.log")  # same database, same Redis
    await asyncio.to_thread(node_proc.start)  # one after the other: the first brings the schema up
    await asyncio.to_thread(other.start)
    try:
        async with browser() as http:
            seen = [await log_in(node_proc, http, f"guess-{i}", ATTACKER) for i in range(6)]
            assert [s for s, _ in seen] == [401] * 6, seen  # the sixth starts a wait of 1 s
            assert (await log_in(other, http, PASSWORD, ATTACKER))[0] == 429  # at the other process too
            assert (await log_in(other, http, PASSWORD, OPERATOR))[0] == 303
    finally:
        other.stop()
