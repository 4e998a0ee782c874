"""What every limiter does, run against the in-memory one and the Redis one on an injected clock."""

from __future__ import annotations

import pytest

from routstr.limits import Bound, LimitPolicy, Limits, RateLimiter, window_reset
from tests.limits.conftest import FakeClock

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_requests_per_minute_refuse_then_recover(limiter: RateLimiter, clock: FakeClock) -> None:
    lim = Limits(requests_per_minute=3, tokens_per_hour=0, concurrent=0)
    got = [await limiter.acquire(1, lim) for _ in range(3)]
    assert [d.remaining for d in got] == [2, 1, 0] and all(d.allowed for d in got)
    assert got[0].reset == window_reset(clock.now, 60)
    refused = await limiter.acquire(1, lim)
    assert not refused.allowed and refused.bound is Bound.REQUESTS and refused.remaining == 0
    assert refused.retry_after == 50 and refused.reset == got[0].reset  # clock is 10.5 s into the minute
    clock.now += 49.4
    assert not (await limiter.acquire(1, lim)).allowed  # same window still
    clock.now += 0.2  # the next minute
    again = await limiter.acquire(1, lim)
    assert again.allowed and again.remaining == 2 and again.reset == got[0].reset + 60


async def test_token_budget_for_the_hour(limiter: RateLimiter, clock: FakeClock) -> None:
    lim = Limits(requests_per_minute=0, tokens_per_hour=100, concurrent=0)
    assert (await limiter.acquire(2, lim)).allowed
    await limiter.release(2, 60)
    assert (await limiter.acquire(2, lim)).allowed  # 60 < 100: the budget is checked before the call
    await limiter.release(2, 50)
    refused = await limiter.acquire(2, lim)
    assert not refused.allowed and refused.bound is Bound.TOKENS
    assert refused.retry_after == 3600 - 10  # clock is 10.5 s into the hour
    clock.now += 3590  # the next hour
    assert (await limiter.acquire(2, lim)).allowed


async def test_concurrency_cap_and_release(limiter: RateLimiter) -> None:
    lim = Limits(requests_per_minute=0, tokens_per_hour=0, concurrent=2)
    assert (await limiter.acquire(3, lim)).allowed and (await limiter.acquire(3, lim)).allowed
    refused = await limiter.acquire(3, lim)
    assert not refused.allowed and refused.bound is Bound.CONCURRENCY and refused.retry_after == 1
    await limiter.release(3, 0)
    assert (await limiter.acquire(3, lim)).allowed
    assert not (await limiter.acquire(3, lim)).allowed


async def test_a_refused_acquire_counts_and_holds_nothing(limiter: RateLimiter, clock: FakeClock) -> None:
    lim = Limits(requests_per_minute=2, tokens_per_hour=0, concurrent=1)
    assert (await limiter.acquire(4, lim)).remaining == 1
    for _ in range(5):  # refused by concurrency: not counted as requests
        assert (await limiter.acquire(4, lim)).bound is Bound.CONCURRENCY
    await limiter.release(4, 0)
    assert (await limiter.acquire(4, lim)).remaining == 0
    await limiter.release(4, 0)
    for _ in range(5):  # refused by requests/minute: must not take the free slot
        assert (await limiter.acquire(4, lim)).bound is Bound.REQUESTS
    clock.now += 60
    assert (await limiter.acquire(4, lim)).allowed  # a leaked slot would refuse this one


async def test_a_token_refusal_holds_no_slot(limiter: RateLimiter, clock: FakeClock) -> None:
    lim = Limits(requests_per_minute=0, tokens_per_hour=10, concurrent=1)
    assert (await limiter.acquire(5, lim)).allowed
    await limiter.release(5, 10)
    assert (await limiter.acquire(5, lim)).bound is Bound.TOKENS
    clock.now += 3600
    assert (await limiter.acquire(5, lim)).allowed


async def test_keys_are_independent_and_overrides_apply(limiter: RateLimiter) -> None:
    policy = LimitPolicy(default=Limits(1, 0, 0), overrides={7: Limits(3, 0, 0)})
    assert (await limiter.acquire(6, policy.limits_for(6))).allowed
    assert not (await limiter.acquire(6, policy.limits_for(6))).allowed
    assert [(await limiter.acquire(7, policy.limits_for(7))).allowed for _ in range(4)] == [1, 1, 1, 0]


async def test_no_limits_allow_everything(limiter: RateLimiter) -> None:
    for _ in range(50):
        d = await limiter.acquire(8, Limits(0, 0, 0))
        assert d.allowed and d.headers() == {}
    for _ in range(50):
        await limiter.release(8, 1000)
