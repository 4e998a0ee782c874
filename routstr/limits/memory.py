"""The in-process limiter: plain counters in a dict, for a node that runs as one process.

It sits on the hot path (thousands of requests a second), so a call is a dict lookup and a few integer
operations. Nothing awaits inside, so under asyncio no lock is needed. Memory stays bounded: each key
keeps one minute counter and one hour counter (a new window overwrites the old one), and once a minute
the keys idle since the last hour began are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from routstr.limits.rules import HOUR_S, MINUTE_S, Bound, Decision, Limits, allow_all, decide


class _KeyState:
    __slots__ = ("hour", "inflight", "minute", "requests", "tokens")

    def __init__(self, minute: int, hour: int) -> None:
        self.minute = minute  # window index of ``requests``
        self.requests = 0
        self.hour = hour  # window index of ``tokens``
        self.tokens = 0
        self.inflight = 0


class MemoryLimiter:
    """Counters for one process. ``clock`` returns unix seconds (injectable for tests)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._keys: dict[int, _KeyState] = {}
        self._swept_minute = -1

    def _state(self, key_id: int, now: float) -> _KeyState:
        minute = int(now // MINUTE_S)
        if minute != self._swept_minute:
            self._sweep(minute, int(now // HOUR_S))
        st = self._keys.get(key_id)
        if st is None:
            st = self._keys[key_id] = _KeyState(minute, int(now // HOUR_S))
            return st
        if st.minute != minute:
            st.minute, st.requests = minute, 0
            hour = int(now // HOUR_S)
            if st.hour != hour:
                st.hour, st.tokens = hour, 0
        return st

    def _sweep(self, minute: int, hour: int) -> None:
        """Drop keys with nothing in flight and no use this hour: O(keys), at most once a minute."""
        self._swept_minute = minute
        idle = [k for k, st in self._keys.items() if not st.inflight and st.hour != hour]
        for k in idle:
            del self._keys[k]

    async def acquire(self, key_id: int, limits: Limits) -> Decision:
        now = self._clock()
        if limits.unlimited:
            self._state(key_id, now).inflight += 1  # release() will still come
            return allow_all(limits, now)
        st = self._state(key_id, now)
        if limits.tokens_per_hour and st.tokens >= limits.tokens_per_hour:
            return decide(limits, Bound.TOKENS, st.requests, now)
        if limits.requests_per_minute and st.requests >= limits.requests_per_minute:
            return decide(limits, Bound.REQUESTS, st.requests, now)
        if limits.concurrent and st.inflight >= limits.concurrent:
            return decide(limits, Bound.CONCURRENCY, st.requests, now)
        st.requests += 1
        st.inflight += 1
        return decide(limits, None, st.requests, now)

    async def release(self, key_id: int, tokens: int) -> None:
        st = self._state(key_id, self._clock())
        if st.inflight > 0:
            st.inflight -= 1
        if tokens > 0:
            st.tokens += tokens

    async def close(self) -> None:
        self._keys.clear()

    def __len__(self) -> int:
        """Keys currently tracked (for tests and metrics)."""
        return len(self._keys)
