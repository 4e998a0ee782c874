"""The fleet limiter: counters in Redis, shared by every node process that points at the same server.

One atomic Lua script per acquire and one per release (see ``lua.py`` for the data layout), so a
request costs two round trips and no race between processes.

Crash safety: a concurrency slot is a sorted-set member scored by its expiry (``slot_ttl_s``, default
60 s). While a request runs, its process pushes the expiry forward every ``slot_ttl_s / 3`` (one
pipelined round trip for all its slots), so a stream may run for half an hour and keep its slot; a
process that dies stops refreshing and its slots free themselves within ``slot_ttl_s``.

Redis down: the limiter fails *open* with a logged warning — rate limits protect capacity, not money,
and refusing every paid request because a cache is down is worse than briefly not limiting. After a
failure it skips Redis for ``retry_s`` so a dead server does not add a timeout to every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from routstr.limits import lua
from routstr.limits.rules import Bound, Decision, Limits, allow_all, decide

log = logging.getLogger(__name__)

_BOUNDS = {1: Bound.REQUESTS, 2: Bound.TOKENS, 3: Bound.CONCURRENCY}


class RedisLimiter:
    """Limits shared through Redis. ``clock`` (unix seconds) is for tests; None uses the server's clock."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        *,
        slot_ttl_s: float = 60.0,
        retry_s: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_ms = int(slot_ttl_s * 1000)
        self._retry_s = retry_s
        self._clock = clock
        self._acquire = client.register_script(lua.ACQUIRE)
        self._release = client.register_script(lua.RELEASE)
        self._refresh = client.register_script(lua.REFRESH)
        # slots this process holds, oldest first: release() frees the oldest of the key's slots, which
        # is the one most likely to have expired already if a request outlived a refresh
        self._slots: dict[int, deque[str]] = {}
        self._ids = (f"{uuid.uuid4().hex[:12]}:{n}" for n in itertools.count())
        self._refresher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._down_until = 0.0
        self._failing = False

    def _keys(self, key_id: int) -> list[str]:
        base = f"{self._prefix}:{{{key_id}}}"
        return [base + ":w", base + ":s"]

    def _now_ms(self) -> int:
        return -1 if self._clock is None else int(self._clock() * 1000)

    def _local_now(self) -> float:
        return time.time() if self._clock is None else self._clock()

    def _available(self) -> bool:
        return not self._failing or time.monotonic() >= self._down_until

    def _failed(self, what: str, e: Exception) -> None:
        if not self._failing:
            log.warning("rate limiter: Redis unreachable (%s: %r); not limiting until it is back", what, e)
        self._failing = True
        self._down_until = time.monotonic() + self._retry_s

    def _ok(self) -> None:
        if self._failing:
            log.info("rate limiter: Redis reachable again; limiting resumes")
            self._failing = False

    async def acquire(self, key_id: int, limits: Limits) -> Decision:
        if limits.unlimited or not self._available():
            return allow_all(limits, self._local_now())
        slot = ""
        if limits.concurrent:
            # noted before the round trip, so a cancelled acquire can still give its slot back
            slot = next(self._ids)
            self._slots.setdefault(key_id, deque()).append(slot)
        args = [self._now_ms(), limits.requests_per_minute, limits.tokens_per_hour, limits.concurrent]
        try:
            res: Any = await self._acquire(keys=self._keys(key_id), args=[*args, slot, self._ttl_ms])
        except (RedisError, OSError) as e:
            self._forget(key_id, slot)
            self._failed("acquire", e)
            return allow_all(limits, self._local_now())
        except asyncio.CancelledError:
            if self._forget(key_id, slot):
                self._spawn(self._send_release(key_id, 0, slot))
            raise
        self._ok()
        code, used, now_ms = int(res[0]), int(res[1]), int(res[2])
        if code:
            self._forget(key_id, slot)
            return decide(limits, _BOUNDS[code], used, now_ms / 1000)
        if slot and (self._refresher is None or self._refresher.done()):
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())
        return decide(limits, None, used, now_ms / 1000)

    async def release(self, key_id: int, tokens: int) -> None:
        slot = ""
        held = self._slots.get(key_id)
        if held:
            slot = held.popleft()
            if not held:
                del self._slots[key_id]
        if (slot or tokens > 0) and self._available():
            await self._send_release(key_id, max(0, tokens), slot)

    async def _send_release(self, key_id: int, tokens: int, slot: str) -> None:
        try:
            await self._release(keys=self._keys(key_id), args=[self._now_ms(), tokens, slot])
        except (RedisError, OSError) as e:
            self._failed("release", e)  # the slot expires on its own: it is no longer refreshed
        else:
            self._ok()

    def _forget(self, key_id: int, slot: str) -> bool:
        held = self._slots.get(key_id)
        if not slot or not held or slot not in held:
            return False
        held.remove(slot)
        if not held:
            del self._slots[key_id]
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh_loop(self) -> None:
        """Keep the slots of running requests alive; ends when this process holds none."""
        while self._slots:
            await asyncio.sleep(self._ttl_ms / 3000)
            await self.refresh()

    async def refresh(self) -> None:
        """Push the expiry of every slot this process holds: one pipelined round trip."""
        if not self._slots or not self._available():
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key_id, held in list(self._slots.items()):  # acquire may add keys meanwhile
                    args: list[str | int] = [self._now_ms(), self._ttl_ms, *held]
                    await self._refresh(keys=self._keys(key_id), args=args, client=pipe)
                await pipe.execute()
        except (RedisError, OSError) as e:
            self._failed("refresh", e)

    async def close(self) -> None:
        """Stop refreshing and disconnect. Slots still held are not freed: they expire like a crash's."""
        if self._refresher is not None and not self._refresher.done():
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await asyncio.gather(*self._tasks, return_exceptions=True)  # slots given back by cancelled acquires
        await self._redis.aclose()
