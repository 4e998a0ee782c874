"""The login backoff's records in Redis, shared by a fleet, on the Redis server's clock (one clock
for every process). If Redis fails, the process falls back to its own memory (logged) rather than
letting every guess through: a login limit protects the password, not capacity.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from routstr.limits.backoff import BackoffPolicy, MemoryBackoff

log = logging.getLogger(__name__)

# KEYS[1]: the name's record, a hash of n (attempts let through) and u (next allowed, unix ms).
# ARGV: free, base ms, max ms, forget ms. Returns the ms to wait (0: let through and counted).
_ATTEMPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'n', 'u')
local n, u = tonumber(h[1]) or 0, tonumber(h[2]) or 0
if now < u then return u - now end
n = n + 1
local free, base, cap, forget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local wait = 0
if n > free then wait = math.min(cap, base * 2 ^ math.min(n - free - 1, 60)) end
wait = math.floor(wait)
redis.call('HSET', KEYS[1], 'n', n, 'u', string.format('%d', now + wait))
redis.call('PEXPIRE', KEYS[1], wait + forget)
return 0
"""


class RedisBackoff:
    """Records shared by a fleet through Redis; this process's memory if Redis fails."""

    def __init__(self, client: Redis, prefix: str, policy: BackoffPolicy) -> None:
        self.policy = policy
        self._redis = client
        self._prefix = prefix
        self._script = client.register_script(_ATTEMPT)
        self._fallback = MemoryBackoff(policy)
        self._failing = False

    def _key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    async def attempt(self, name: str) -> int:
        p = self.policy
        args = [p.free, int(p.base_s * 1000), int(p.max_s * 1000), int(p.forget_s * 1000)]
        try:
            res: Any = await self._script(keys=[self._key(name)], args=args)
        except (RedisError, OSError) as e:
            self._failed(e)
            return await self._fallback.attempt(name)
        self._ok()
        wait_ms = int(res)
        return 0 if wait_ms <= 0 else max(1, math.ceil(wait_ms / 1000))

    async def forget(self, name: str) -> None:
        await self._fallback.forget(name)
        try:
            await self._redis.delete(self._key(name))
        except (RedisError, OSError) as e:
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        if not self._failing:
            log.warning("login backoff: Redis unreachable (%r); counting in this process until it is back", e)
        self._failing = True

    def _ok(self) -> None:
        if self._failing:
            log.info("login backoff: Redis reachable again")
            self._failing = False
