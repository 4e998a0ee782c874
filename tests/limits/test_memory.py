"""The in-memory limiter's own promise: memory stays bounded as keys come and go."""

from __future__ import annotations

import pytest

from routstr.limits import Limits, MemoryLimiter
from tests.limits.conftest import FakeClock

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_idle_keys_are_dropped(clock: FakeClock) -> None:
    lim = MemoryLimiter(clock)
    limits = Limits(requests_per_minute=5, tokens_per_hour=100, concurrent=2)
    for key_id in range(1000):
        assert (await lim.acquire(key_id, limits)).allowed
        if key_id:  # key 0 stays in flight
            await lim.release(key_id, 3)
    assert len(lim) == 1000
    clock.now += 120  # two minutes later, same hour: the token counts must survive
    assert (await lim.acquire(999, Limits(0, 3, 0))).bound is not None
    assert len(lim) == 1000
    clock.now += 3600  # next hour: only the key with a request in flight is kept
    await lim.acquire(5000, limits)
    assert len(lim) == 2
    await lim.release(0, 0)
    await lim.release(5000, 0)
    clock.now += 3600
    await lim.acquire(5001, limits)
    assert len(lim) == 1


async def test_release_without_acquire_does_not_go_negative(clock: FakeClock) -> None:
    lim = MemoryLimiter(clock)
    await lim.release(1, 0)
    await lim.release(1, 0)
    one = Limits(0, 0, 1)
    assert (await lim.acquire(1, one)).allowed and not (await lim.acquire(1, one)).allowed
