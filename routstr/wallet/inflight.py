"""The swaps this process is executing right now (sent to a mint, answer not yet stored).

Recovery must leave them alone: to recovery, a swap in flight looks like one that never happened
(the mint has not signed yet), and undoing it would give back money the mint is about to spend.
Swaps of other processes are protected by recovery's age limit instead.

One ``InFlight`` per node, held by its ``MintRegistry`` (``mints.in_flight``): every operation and
the recovery of one process receive that registry, so they see one set, and two nodes in one
process (tests) do not see each other's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

# A pending swap younger than this may still be in flight (its request is waiting for the mint):
# recovering it then would race the request, e.g. give a token back that the mint is spending.
IN_FLIGHT_GRACE_S = 60.0
# Melts (payouts, conversions) may wait for a Lightning payment for minutes.
MELT_GRACE_S = 330.0


class InFlight:
    """The ids of the swaps this process has sent and not yet finished."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    @contextmanager
    def executing(self, swap_id: str) -> Iterator[None]:
        """Mark ``swap_id`` as in flight for the block (from sending it until its result is stored)."""
        self._ids.add(swap_id)
        try:
            yield
        finally:
            self._ids.discard(swap_id)

    def __contains__(self, swap_id: object) -> bool:
        return swap_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)
