"""Refused redemptions per client address: a forged token must cost its sender more than the node.

Each redemption may cost the node a mint call (the swap, a keyset refresh) and curve work. One the
mint refuses (forged or spent proofs) or the node refuses (a DLEQ proof that does not verify, an
unknown keyset) counts against the address that sent it; past ``per_minute`` of them in a clock
minute, that address's redemptions get 429 before any of that work, until the minute ends.
Redemptions that succeed count nothing, so an honest client never meets the limit, whatever its rate
(X-Cashu users included, and everyone behind one proxy). Redemptions in flight are bounded by the
same number, so a burst of forged tokens sent at once cannot all reach the mint before the first
refusal is counted.

The counters are the rate limiter's (this process's, or a fleet's in Redis), under ``REDEEM_SPACE``
ids: one id per address and clock minute, whose token count is its refusals (the limiter's hour
window of that id only ever sees that minute) and whose concurrency slots are its redemptions in
flight.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from routstr.core.errors import InvalidRequest, RateLimited
from routstr.limits.by_address import REDEEM_SPACE, address_group, address_id
from routstr.limits.memory import MemoryLimiter
from routstr.limits.rules import (
    CONCURRENCY_RETRY_S,
    MINUTE_S,
    Bound,
    Decision,
    Limits,
    RateLimiter,
    seconds_until_reset,
)

# REDEEM_LIMIT_PER_ADDRESS's default: a wallet's bugs or a user's retries never refuse this many
# tokens a minute; a forger gets one mint call a second from each address (or /64 of IPv6)
REDEEM_LIMIT_PER_ADDRESS = 60


class RedeemGate:
    """Counts the refused redemptions of each client address (``per_minute`` 0: off)."""

    def __init__(
        self,
        limiter: RateLimiter | None = None,
        per_minute: int = REDEEM_LIMIT_PER_ADDRESS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limiter: RateLimiter = limiter if limiter is not None else MemoryLimiter(clock)
        self.per_minute = per_minute
        self._clock = clock

    @asynccontextmanager
    async def attempt(self, remote: str | None) -> AsyncIterator[None]:
        """Wrap one redemption for the client at ``remote``: 429 if it used up its refusals; a
        refusal (an ``InvalidRequest`` leaving the block) is counted. ``remote`` None (a caller that
        does not know who asks) is not counted."""
        if remote is None or not self.per_minute:
            yield
            return
        now = self._clock()
        who = address_id(f"{address_group(remote)} {int(now // MINUTE_S)}", REDEEM_SPACE)
        decision = await self.limiter.acquire(who, Limits(0, self.per_minute, self.per_minute))
        if not decision.allowed:
            raise self._refusal(decision, now)
        refused = 0
        try:
            yield
        except InvalidRequest:
            refused = 1
            raise
        finally:
            await self.limiter.release(who, refused)

    @staticmethod
    def _refusal(decision: Decision, now: float) -> RateLimited:
        if decision.bound is Bound.CONCURRENCY:
            retry = CONCURRENCY_RETRY_S
        else:
            retry = seconds_until_reset(now, MINUTE_S)
        return RateLimited(
            f"Too many refused Cashu tokens from this address; retry after {retry} s",
            details={"limit": "refused_redemptions_per_minute", "retry_after": retry},
            headers={"Retry-After": str(retry)},
        )
