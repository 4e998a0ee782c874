"""Crash recovery: every pending swap is finished or undone from what the mints say happened.

How a swap of each kind is settled is its operation's (``routstr.wallet.operations``): a token swap
asks NUT-09 restore whether the mint signed its outputs (then it is completed as if its answer had
arrived) and NUT-07 whether its inputs are still unspent (then it never happened: undone); a
conversion, a mint step and a melt ask for their quotes' states first.
"""

from __future__ import annotations

from routstr.core.ids import process_is_dead
from routstr.core.swap_kinds import SwapState
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.mints import MintRegistry
from routstr.wallet.operations import OPERATIONS


async def recover_swap(db: Database, mints: MintRegistry, swap: wallet_store.SwapRow) -> SwapState:
    """Settle one pending swap; returns its state afterwards (pending if the mints cannot say yet)."""
    return await OPERATIONS[swap.kind].recover(db, mints, swap)


async def recover_pending(
    db: Database, mints: MintRegistry, min_age_s: float | None = None
) -> dict[str, int]:
    """Settle every pending swap the mints can tell us about, unless its sender may still be waiting
    for the mint: a swap this process is sending (``mints.in_flight``) is left alone; one whose sender
    is known dead (a pid on this host that is gone) is settled now; any other, this process's own
    included (its row is written before its id joins ``in_flight``), only once it is older than its
    operation's grace (``min_age_s`` instead when given; 0 at a start-up where no other process can be
    running)."""
    now = accounts.now_ms()
    async with db.read() as conn:
        pending = await wallet_store.pending_swaps(conn)
    counts: dict[str, int] = {}
    for swap in pending:
        if swap.id in mints.in_flight:
            continue
        operation = OPERATIONS[swap.kind]
        if not process_is_dead(swap.executor):
            grace = operation.grace_s if min_age_s is None else min_age_s
            if swap.created_at > now - grace * 1000:
                continue
        state = await operation.recover(db, mints, swap)
        counts[state.value] = counts.get(state.value, 0) + 1
    return counts
