"""Fixtures for the limiter tests: a hand-moved clock and limiters on memory or the real Redis.

Redis tests use the server at 127.0.0.1:6379. They skip only when nothing listens there *and* ``CI`` is
unset; in CI a missing server is a failure, so the fleet path cannot silently go untested.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from routstr.limits import HOUR_S, MemoryLimiter, RateLimiter, window_start
from routstr.limits.redis_limiter import RedisLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"


class FakeClock:
    """Unix time the test moves by hand; starts 10 s into the current hour (real time, so Redis TTLs,
    which are relative, behave) and away from any minute edge."""

    def __init__(self) -> None:
        self.now = window_start(time.time(), HOUR_S) + 10.5

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _redis_listening() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def require_redis() -> None:
    if not _redis_listening():
        if os.environ.get("CI"):
            pytest.fail("CI is set but no Redis listens on 127.0.0.1:6379")
        pytest.skip("no Redis on 127.0.0.1:6379 (set CI to make this a failure)")


class Fleet:
    """RedisLimiters ("node processes") sharing one fresh key prefix; ``cleanup`` deletes its keys."""

    def __init__(self) -> None:
        self.prefix = f"test:rl:{uuid.uuid4().hex[:10]}"
        self.made: list[RedisLimiter] = []
        self.admin = Redis.from_url(REDIS_URL)

    def make(self, **kw: Any) -> RedisLimiter:
        lim = RedisLimiter(Redis.from_url(REDIS_URL), self.prefix, **kw)
        self.made.append(lim)
        return lim

    async def keys(self) -> list[bytes]:
        return [k async for k in self.admin.scan_iter(match=self.prefix + ":*")]

    async def cleanup(self) -> None:
        for lim in self.made:
            await lim.close()
        keys = await self.keys()
        if keys:
            await self.admin.delete(*keys)
        await self.admin.aclose()


@pytest_asyncio.fixture(loop_scope="session")
async def fleet() -> AsyncIterator[Fleet]:
    require_redis()
    f = Fleet()
    yield f
    await f.cleanup()


@pytest_asyncio.fixture(loop_scope="session", params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[RateLimiter]:
    """The same behaviour tests run against both limiters, on the injected clock."""
    if request.param == "memory":
        mem = MemoryLimiter(clock)
        yield mem
        await mem.close()
        return
    require_redis()
    f = Fleet()
    yield f.make(clock=clock)
    await f.cleanup()
