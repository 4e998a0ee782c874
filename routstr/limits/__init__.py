"""Per-key rate limits: requests per minute, tokens per hour and concurrent requests.

In one process the counters live in memory (:class:`MemoryLimiter`); with ``REDIS_URL`` a fleet of
node processes shares them through Redis (:class:`RedisLimiter`). Usage per request::

    decision = await limiter.acquire(key_id, policy.limits_for(key_id))
    if not decision.allowed:
        raise decision.error()  # 429 rate_limit_exceeded with Retry-After and X-RateLimit-*
    try:
        ...  # the upstream call; add decision.headers() to the response
    finally:
        await limiter.release(key_id, tokens_used)
"""

from __future__ import annotations

from routstr.limits.memory import MemoryLimiter
from routstr.limits.rules import (
    DEFAULT_LIMITS,
    HOUR_S,
    MINUTE_S,
    Bound,
    Decision,
    LimitPolicy,
    Limits,
    RateLimiter,
    decide,
    seconds_until_reset,
    window_reset,
    window_start,
)

__all__ = [
    "DEFAULT_LIMITS",
    "HOUR_S",
    "MINUTE_S",
    "Bound",
    "Decision",
    "LimitPolicy",
    "Limits",
    "MemoryLimiter",
    "RateLimiter",
    "decide",
    "make_limiter",
    "seconds_until_reset",
    "window_reset",
    "window_start",
]


def make_limiter(
    redis_url: str | None, prefix: str, *, slot_ttl_s: float = 60.0, timeout_s: float = 0.5
) -> RateLimiter:
    """In-memory counters without ``redis_url``; shared Redis counters with it.

    ``timeout_s`` bounds each Redis call: past it the request goes through unlimited (fail-open).
    """
    if not redis_url:
        return MemoryLimiter()
    from redis.asyncio import Redis  # only a fleet needs the client

    from routstr.limits.redis_limiter import RedisLimiter

    client = Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    return RedisLimiter(client, prefix, slot_ttl_s=slot_ttl_s)
