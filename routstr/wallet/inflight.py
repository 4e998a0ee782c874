"""The swaps this process is executing right now (sent to a mint, answer not yet stored).

Recovery must leave them alone: to recovery, a swap in flight looks like one that never happened
(the mint has not signed yet), and undoing it would give back money the mint is about to spend.
Swaps of other processes are protected by recovery's age limit instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_IN_FLIGHT: set[str] = set()


@contextmanager
def executing(swap_id: str) -> Iterator[None]:
    _IN_FLIGHT.add(swap_id)
    try:
        yield
    finally:
        _IN_FLIGHT.discard(swap_id)


def is_executing(swap_id: str) -> bool:
    return swap_id in _IN_FLIGHT
