"""Per-key rate limits as pure logic: the limits, fixed-window math and the decision a request gets.

No I/O here, so the in-memory and the Redis limiters share one set of rules and headers.

Windows are *fixed* (aligned on the unix clock: minutes start at :00, hours at :00:00), not sliding:
one integer counter per window is O(1) in time and memory, and every node of a fleet agrees on where a
window starts. The price is that a client may burst up to twice the limit across a window edge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from routstr.core.errors import RateLimited

MINUTE_S = 60
HOUR_S = 3600
CONCURRENCY_RETRY_S = 1  # a slot frees when some request ends: no window to wait for, so retry soon


@dataclass(frozen=True, slots=True)
class Limits:
    """What one API key may do; 0 turns a limit off. The defaults are RATE_LIMIT_*'s (routstr.config
    reads them from ``DEFAULT_LIMITS``: config imports this package, so this package cannot import it)."""

    requests_per_minute: int = 1000
    tokens_per_hour: int = 1_000_000
    concurrent: int = 10

    @property
    def unlimited(self) -> bool:
        return not (self.requests_per_minute or self.tokens_per_hour or self.concurrent)


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """The defaults plus per-key overrides: ``limits_for`` is the hook the pipeline calls per request."""

    default: Limits = DEFAULT_LIMITS
    overrides: Mapping[int, Limits] = field(default_factory=dict)

    def limits_for(self, key_id: int) -> Limits:
        return self.overrides.get(key_id, self.default)


class Bound(StrEnum):
    """Which limit refused a request."""

    REQUESTS = "requests_per_minute"
    TOKENS = "tokens_per_hour"
    CONCURRENCY = "concurrent"


def window_index(now: float, size_s: int) -> int:
    """The number of the fixed window of ``size_s`` seconds that unix time ``now`` falls in."""
    return int(now // size_s)


def window_start(now: float, size_s: int) -> int:
    return window_index(now, size_s) * size_s


def window_reset(now: float, size_s: int) -> int:
    """Unix seconds when the window holding ``now`` ends (the next one starts)."""
    return (window_index(now, size_s) + 1) * size_s


def seconds_until_reset(now: float, size_s: int) -> int:
    """Whole seconds to wait for the next window, at least 1 (Retry-After is an integer)."""
    return max(1, math.ceil(window_reset(now, size_s) - now))


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~1.3 µs more, on every request
class Decision:
    """The answer to one acquire (read-only by convention). ``remaining``/``reset`` are about the
    requests-per-minute window."""

    allowed: bool
    limit: int  # requests per minute, 0 = unlimited
    remaining: int
    reset: int  # unix seconds
    retry_after: int = 0  # seconds; 0 when allowed
    bound: Bound | None = None  # the limit that refused, None when allowed

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*`` describe the requests/minute window, the limit clients hit first and the one
        OpenAI/OpenRouter-style clients read; left out when that limit is off. Refusals add Retry-After."""
        h: dict[str, str] = {}
        if self.limit:
            h["X-RateLimit-Limit"] = str(self.limit)
            h["X-RateLimit-Remaining"] = str(self.remaining)
            h["X-RateLimit-Reset"] = str(self.reset)
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after)
        return h

    def error(self) -> RateLimited:
        """The 429 ``rate_limit_exceeded`` for a refused decision, its headers included."""
        bound = self.bound or Bound.REQUESTS
        what = {
            Bound.REQUESTS: "too many requests per minute",
            Bound.TOKENS: "token budget for this hour used up",
            Bound.CONCURRENCY: "too many concurrent requests",
        }[bound]
        return RateLimited(
            f"Rate limit exceeded: {what}; retry after {self.retry_after} s",
            details={"limit": bound.value, "retry_after": self.retry_after},
            headers=self.headers(),
        )


def decide(limits: Limits, bound: Bound | None, requests_used: int, now: float) -> Decision:
    """Build the decision from what a limiter found: ``requests_used`` counts this request if allowed."""
    rpm = limits.requests_per_minute
    reset = window_reset(now, MINUTE_S)
    remaining = max(0, rpm - requests_used) if rpm else 0
    if bound is None:
        return Decision(True, rpm, remaining, reset)
    if bound is Bound.REQUESTS:
        retry = seconds_until_reset(now, MINUTE_S)
    elif bound is Bound.TOKENS:
        retry = seconds_until_reset(now, HOUR_S)
    else:
        retry = CONCURRENCY_RETRY_S
    return Decision(False, rpm, remaining, reset, retry, bound)


def allow_all(limits: Limits, now: float) -> Decision:
    """What a limiter answers without counting (no limits, or its store is down): allowed, full budget."""
    return Decision(True, limits.requests_per_minute, limits.requests_per_minute, window_reset(now, MINUTE_S))


class RateLimiter(Protocol):
    """Per request: ``acquire`` before the upstream call; if allowed, ``release`` exactly once after it.

    A refused acquire counts and holds nothing, so it needs no release.
    """

    async def acquire(self, key_id: int, limits: Limits) -> Decision:
        """Count one request in the minute window, check the hour's token budget, take a concurrency slot."""
        ...

    async def release(self, key_id: int, tokens: int) -> None:
        """Free the concurrency slot and add the tokens the request used to the hour window."""
        ...

    async def close(self) -> None:
        """Stop background work and drop connections (slots still held expire on their own)."""
        ...
