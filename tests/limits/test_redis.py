"""The Redis limiter against the real server: a fleet counts together, crashed slots expire, keys
expire, and a dead Redis lets requests through (fail-open) with a warning."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from routstr.limits import Bound, Limits, make_limiter
from routstr.limits.redis_limiter import RedisLimiter
from tests.limits.conftest import FakeClock, Fleet

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_two_processes_count_together(fleet: Fleet, clock: FakeClock) -> None:
    a, b = fleet.make(clock=clock), fleet.make(clock=clock)
    lim = Limits(requests_per_minute=3, tokens_per_hour=100, concurrent=2)
    assert [(await a.acquire(1, lim)).remaining, (await b.acquire(1, lim)).remaining] == [2, 1]
    refused = await a.acquire(1, lim)  # one slot on each process: the cap is shared
    assert refused.bound is Bound.CONCURRENCY
    await b.release(1, 100)  # tokens used through b ...
    refused = await a.acquire(1, lim)  # ... exhaust the budget for a
    assert refused.bound is Bound.TOKENS
    await a.release(1, 0)
    clock.now += 3600  # a new hour, and a new minute
    assert [(await b.acquire(1, lim)).remaining, (await a.acquire(1, lim)).remaining] == [2, 1]


async def test_a_crashed_holders_slot_expires_after_its_ttl(fleet: Fleet, clock: FakeClock) -> None:
    a, b = fleet.make(clock=clock, slot_ttl_s=30), fleet.make(clock=clock, slot_ttl_s=30)
    one = Limits(requests_per_minute=0, tokens_per_hour=0, concurrent=1)
    assert (await a.acquire(1, one)).allowed
    await a.close()  # the process dies: no release, no more refreshes
    assert (await b.acquire(1, one)).bound is Bound.CONCURRENCY
    clock.now += 29
    assert (await b.acquire(1, one)).bound is Bound.CONCURRENCY
    clock.now += 1.5
    assert (await b.acquire(1, one)).allowed


async def test_live_slots_are_refreshed_on_the_server_clock(fleet: Fleet) -> None:
    a, b = fleet.make(slot_ttl_s=0.6), fleet.make(slot_ttl_s=0.6)  # Redis TIME, real waiting
    one = Limits(requests_per_minute=0, tokens_per_hour=0, concurrent=1)
    assert (await a.acquire(1, one)).allowed
    await asyncio.sleep(1.3)  # twice the TTL: a's heartbeat keeps its running request's slot
    assert (await b.acquire(1, one)).bound is Bound.CONCURRENCY
    await a.close()  # crash
    await asyncio.sleep(0.7)
    assert (await b.acquire(1, one)).allowed


async def test_every_key_has_an_expiry_and_the_layout_is_namespaced(fleet: Fleet, clock: FakeClock) -> None:
    lim = fleet.make(clock=clock, slot_ttl_s=45)
    await lim.acquire(42, Limits(requests_per_minute=10, tokens_per_hour=1000, concurrent=3))
    await lim.release(42, 0)
    await lim.acquire(42, Limits(requests_per_minute=10, tokens_per_hour=1000, concurrent=3))
    await lim.release(43, 0)  # nothing held for 43: no round trip, no key
    keys = sorted(await fleet.keys())
    assert keys == [f"{fleet.prefix}:{{42}}:s".encode(), f"{fleet.prefix}:{{42}}:w".encode()]
    hw = await fleet.admin.hgetall(f"{fleet.prefix}:{{42}}:w")
    assert hw[b"mc"] == b"2" and hw[b"ht"] == b"0"
    assert await fleet.admin.zcard(f"{fleet.prefix}:{{42}}:s") == 1
    for k in keys:
        ttl_ms = await fleet.admin.pttl(k)
        assert 0 < ttl_ms <= 3600_000 + 60_000
    assert 40_000 < await fleet.admin.pttl(keys[0]) <= 45_000


async def test_a_cancelled_acquire_gives_its_slot_back(fleet: Fleet) -> None:
    lim = fleet.make()
    one = Limits(requests_per_minute=0, tokens_per_hour=0, concurrent=1)
    script = lim._acquire
    ran = asyncio.Event()

    async def slow_reply(**kw: Any) -> Any:  # the script runs, then the client goes away before the reply
        res = await script(**kw)
        ran.set()
        await asyncio.sleep(10)
        return res

    lim._acquire = slow_reply  # type: ignore[assignment]
    task = asyncio.create_task(lim.acquire(9, one))
    await ran.wait()
    assert await fleet.admin.zcard(f"{fleet.prefix}:{{9}}:s") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.gather(*lim._tasks)
    assert await fleet.admin.zcard(f"{fleet.prefix}:{{9}}:s") == 0
    lim._acquire = script
    assert (await lim.acquire(9, one)).allowed and not lim._tasks


async def test_redis_down_fails_open_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    lim = RedisLimiter(dead, "test:rl:dead", retry_s=30)
    one = Limits(requests_per_minute=1, tokens_per_hour=1, concurrent=1)
    with caplog.at_level(logging.WARNING, logger="routstr.limits.redis_limiter"):
        decisions = [await lim.acquire(1, one) for _ in range(3)]
        t0 = time.perf_counter()
        for _ in range(100):  # while marked down, Redis is not even tried
            await lim.acquire(1, one)
            await lim.release(1, 5)
        assert time.perf_counter() - t0 < 0.1
    assert all(d.allowed for d in decisions) and decisions[0].headers()["X-RateLimit-Limit"] == "1"
    warnings = [r for r in caplog.records if "unreachable" in r.message]
    assert len(warnings) == 1
    await lim.close()


async def test_make_limiter_picks_the_backend(fleet: Fleet) -> None:
    from routstr.limits import MemoryLimiter

    assert isinstance(make_limiter(None, "x"), MemoryLimiter)
    lim = make_limiter("redis://127.0.0.1:6379/0", fleet.prefix)
    assert isinstance(lim, RedisLimiter)
    assert (await lim.acquire(1, Limits(2, 0, 0))).remaining == 1
    await lim.close()
