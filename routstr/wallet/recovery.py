"""Crash recovery: every pending swap is finished or undone from what the mint says happened.

NUT-09 restore returns the signatures of outputs the mint already signed: then the swap happened
and is completed as if its answer had arrived. Otherwise NUT-07 tells whether the inputs are
still unspent (the swap never happened: undo it) or pending (ask again later).
"""

from __future__ import annotations

import logging

from routstr.cashu.errors import CashuError
from routstr.cashu.nut00 import Proof
from routstr.core.ids import process_is_dead
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.inflight import is_executing
from routstr.wallet.mints import MintRegistry
from routstr.wallet.swaps import complete_swap, prepared_from_record

log = logging.getLogger(__name__)


async def revert_refund(db: Database, swap_id: str, *, inputs_spent: bool, error: str) -> None:
    """A refund swap that did not happen: give the debit back to the key."""
    async with db.write() as conn:
        swap = await wallet_store.swap_by_id(conn, swap_id)
        if swap is None or not await wallet_store.finish_swap(
            conn, swap_id, wallet_store.FAILED, error=error
        ):
            return
        await wallet_store.settle_inputs(conn, swap_id, spent=inputs_spent)
        assert swap.key_id is not None
        debit = (await accounts.refund_amount(conn, swap.key_id, swap_id)) or 0
        if debit:
            await accounts.credit(conn, swap.key_id, debit, ref=swap_id)


async def recover_swap(db: Database, mints: MintRegistry, swap: wallet_store.SwapRow) -> str:
    """Settle one pending swap; returns its state afterwards (pending if the mint cannot say yet)."""
    if swap.kind == "convert":
        from routstr.wallet.convert import recover_conversion  # (convert builds on this module)

        return await recover_conversion(db, mints, swap)
    if swap.kind == "melt":
        from routstr.wallet.lightning_out import recover_melt

        return await recover_melt(db, mints, swap)
    if swap.kind == "mint":
        from routstr.wallet.lightning_in import finish_mint

        return await finish_mint(db, mints, swap.id)
    if not mints.is_trusted(swap.mint_url):
        log.error("pending swap %s is for a mint no longer configured: %s", swap.id, swap.mint_url)
        return wallet_store.PENDING
    client = mints.client(swap.mint_url)
    prepared = [prepared_from_record(r) for r in swap.outputs]
    try:
        restored = await client.restore([p.to_blinded_message() for p in prepared])
        signed = {bm.B_: sig for bm, sig in restored}
        if prepared and all(p.B_ in signed for p in prepared):
            await complete_swap(db, mints, swap.id, [signed[p.B_] for p in prepared])
            return wallet_store.DONE
        inputs = [Proof.from_dict(d) for d in swap.inputs]
        states = await client.check_state([p.Y for p in inputs])
    except CashuError as e:
        log.warning("swap %s: mint %s could not settle it yet: %s", swap.id, swap.mint_url, e)
        return wallet_store.PENDING
    values = set(states.values())
    if "PENDING" in values or signed:
        return wallet_store.PENDING  # in flight at the mint, or partly signed: ask again later
    spent = values == {"SPENT"}
    if swap.kind == "redeem":
        async with db.write() as conn:
            await wallet_store.abandon_redeem(conn, swap.id)
    elif swap.kind == "withdraw":  # no key to give anything back to: the proofs are the node's again
        async with db.write() as conn:
            if await wallet_store.finish_swap(
                conn, swap.id, wallet_store.FAILED, error="swap did not happen"
            ):
                await wallet_store.settle_inputs(conn, swap.id, spent=spent)
    else:
        await revert_refund(db, swap.id, inputs_spent=spent, error="swap did not happen")
    return wallet_store.FAILED


# A pending swap younger than this may still be in flight (its request is waiting for the mint):
# recovering it then would race the request, e.g. give a token back that the mint is spending.
IN_FLIGHT_GRACE_S = 60.0
# Melts (payouts, conversions) may wait for a Lightning payment for minutes.
MELT_GRACE_S = 330.0


async def recover_pending(
    db: Database, mints: MintRegistry, min_age_s: float | None = None
) -> dict[str, int]:
    """Settle every pending swap the mints can tell us about, unless its sender may still be waiting
    for the mint: a swap this process is sending is left alone; one whose sender is known dead (this
    process's own, or a dead pid on this host) is settled now; any other only once it is older than
    the grace (``min_age_s``; 0 at a start-up where no other process can be running)."""
    now = accounts.now_ms()
    async with db.read() as conn:
        pending = await wallet_store.pending_swaps(conn)
    counts: dict[str, int] = {}
    for swap in pending:
        if is_executing(swap.id):
            continue
        if not process_is_dead(swap.executor):
            grace = min_age_s
            if grace is None:
                grace = MELT_GRACE_S if swap.kind in ("melt", "convert") else IN_FLIGHT_GRACE_S
            if swap.created_at > now - grace * 1000:
                continue
        state = await recover_swap(db, mints, swap)
        counts[state] = counts.get(state, 0) + 1
    return counts
