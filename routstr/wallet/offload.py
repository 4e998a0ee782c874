"""Elliptic-curve work of many proofs, run off the event loop.

Verifying a DLEQ proof costs ~0.25 ms, blinding or unblinding an output ~0.1 ms: a token of a
thousand proofs would hold every other request for a quarter of a second. Small batches (the
usual case: a few proofs, a few outputs) run inline, where a thread hand-off would cost more than
the work. Large ones go to a small pool of its own, so that crafted tokens arriving together use
at most two cores and never the default executor other work relies on.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# items (proofs, outputs, signatures) from which a batch leaves the event loop: ~2 ms of work
OFFLOAD_MIN_ITEMS = 8
_WORKERS = 2
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:  # made on first use: most processes never see a large batch
        _pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="routstr-ec")
    return _pool


def _forget_pool() -> None:
    """A forked child has none of the parent's threads: it makes its own pool on first use."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


async def crypto(items: int, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)``: inline for fewer than ``OFFLOAD_MIN_ITEMS`` items, else in the pool.

    ``fn`` must be pure (no event-loop objects): it may run in another thread.
    """
    if items < OFFLOAD_MIN_ITEMS:
        return fn(*args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(fn, *args, **kwargs))
