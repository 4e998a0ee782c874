"""Exponential backoff per name (a client address): a few attempts go through at once, then each one
makes the next wait twice as long, up to a cap; never a lockout, and a success forgets it all.

Used for dashboard logins, where a hard limit per address lets anyone sharing the operator's address
(a NAT, or a reverse proxy the node does not know) lock the operator out, and a limit for everyone
lets anyone at all. The wait is per name only.

Every attempt is counted as a failure *when it is let through* (one atomic step), and the caller
forgets the name after a success: so a burst of concurrent attempts cannot all slip through before
the first failure is written down. Attempts refused while waiting are not counted (they do not make
the wait longer).

In one process the records are in memory (:class:`MemoryBackoff`); with ``REDIS_URL`` they are in
Redis (``redis_backoff.RedisBackoff``), shared by the fleet.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    free: int = 5  # attempts without a wait
    base_s: float = 1.0  # the wait after the first attempt past those; doubles each time
    max_s: float = 300.0  # the longest wait: an address is never shut out for longer
    forget_s: float = 3600.0  # a record is dropped this long after its wait ended

    def wait_after(self, attempts: int) -> float:
        """Seconds the next attempt waits once ``attempts`` have been let through."""
        if attempts <= self.free:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(attempts - self.free - 1, 60))


class Backoff(Protocol):
    async def attempt(self, name: str) -> int:
        """0: go ahead (counted as a failure until :meth:`forget`); else whole seconds to wait."""
        ...

    async def forget(self, name: str) -> None:
        """After a success: the name starts afresh."""
        ...


class MemoryBackoff:
    """Records for one process: name -> (attempts, next allowed, dropped at), unix seconds."""

    MAX_NAMES = 50_000  # past this, expired records are swept, then the oldest dropped

    def __init__(self, policy: BackoffPolicy, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self._clock = clock
        self._records: dict[str, tuple[int, float, float]] = {}

    async def attempt(self, name: str) -> int:
        now = self._clock()
        attempts, until, dropped_at = self._records.get(name, (0, 0.0, 0.0))
        if dropped_at and now >= dropped_at:
            attempts, until = 0, 0.0
        if now < until:
            return max(1, math.ceil(until - now))
        attempts += 1
        wait = self.policy.wait_after(attempts)
        self._records.pop(name, None)  # re-inserted last: dict order is then oldest use first
        self._records[name] = (attempts, now + wait, now + wait + self.policy.forget_s)
        if len(self._records) > self.MAX_NAMES:
            self._trim(now)
        return 0

    async def forget(self, name: str) -> None:
        self._records.pop(name, None)

    def _trim(self, now: float) -> None:
        for name in [n for n, (_, _, dropped_at) in self._records.items() if now >= dropped_at]:
            del self._records[name]
        while len(self._records) > self.MAX_NAMES:
            del self._records[next(iter(self._records))]

    def __len__(self) -> int:
        return len(self._records)
