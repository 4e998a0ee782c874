"""Refused redemptions per client address (issue 14, item 6), on the in-memory and the Redis limiter:
refusals count, successes never do, redemptions in flight are bounded, a new minute starts afresh."""

from __future__ import annotations

import asyncio
import threading

import pytest

from routstr.core.errors import RateLimited, ServiceUnavailable
from routstr.limits import RateLimiter
from routstr.wallet.offload import OFFLOAD_MIN_ITEMS, crypto
from routstr.wallet.redeem import TokenAlreadySpent, TokenInvalid
from routstr.wallet.redeem_gate import RedeemGate
from tests.limits.conftest import FakeClock

pytestmark = pytest.mark.asyncio(loop_scope="session")

ADDR = "203.0.113.7"


async def refuse(gate: RedeemGate, remote: str | None = ADDR) -> None:
    with pytest.raises(TokenInvalid):
        async with gate.attempt(remote):
            raise TokenInvalid("The mint rejected the token")


async def succeed(gate: RedeemGate, remote: str | None = ADDR) -> None:
    async with gate.attempt(remote):
        pass


async def test_refusals_count_and_successes_do_not(limiter: RateLimiter, clock: FakeClock) -> None:
    gate = RedeemGate(limiter, per_minute=3, clock=clock)
    for _ in range(20):
        await succeed(gate)  # an honest client's rate is never limited
    await refuse(gate)
    with pytest.raises(TokenAlreadySpent):  # a spent token is a refusal too
        async with gate.attempt(ADDR):
            raise TokenAlreadySpent("spent")
    with pytest.raises(ServiceUnavailable):  # the mint being down is not the client's fault
        async with gate.attempt(ADDR):
            raise ServiceUnavailable("mint down")
    await refuse(gate)
    with pytest.raises(RateLimited) as e:
        await succeed(gate)  # past the limit nothing is tried, not even a genuine token
    assert e.value.status == 429 and e.value.envelope()["error"]["type"] == "rate_limit_exceeded"
    assert int(e.value.headers["Retry-After"]) == 50  # the clock is 10 s into a minute
    await succeed(gate, "203.0.113.8")  # another address is not affected
    await refuse(gate, None)  # a caller that does not know the address is not counted
    clock.now += 60
    await succeed(gate)  # a new minute
    await refuse(gate)


async def test_redemptions_in_flight_are_bounded(limiter: RateLimiter, clock: FakeClock) -> None:
    """A burst sent at once cannot all reach the mint before the first refusal is counted."""
    gate = RedeemGate(limiter, per_minute=2, clock=clock)
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.attempt(ADDR):
            await release.wait()

    held = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(RateLimited) as e:
        await succeed(gate)
    assert e.value.headers["Retry-After"] == "1"
    release.set()
    await asyncio.gather(*held)
    await succeed(gate)


async def test_zero_turns_it_off(limiter: RateLimiter, clock: FakeClock) -> None:
    gate = RedeemGate(limiter, per_minute=0, clock=clock)
    for _ in range(5):
        await refuse(gate)
    await succeed(gate)


async def test_large_batches_of_curve_work_leave_the_event_loop() -> None:
    def where() -> str:
        return threading.current_thread().name

    assert await crypto(OFFLOAD_MIN_ITEMS - 1, where) == threading.current_thread().name
    assert (await crypto(OFFLOAD_MIN_ITEMS, where)).startswith("routstr-ec")
