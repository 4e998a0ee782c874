"""Checking the books: does the node hold what it owes, and does the ledger explain every balance?

1. every key's balance and reservation equal what its ledger rows add up to;
2. per mint and unit, the proofs the node holds cover what it owes (no shortfall);
3. those proofs are unspent at their mints (NUT-07), so the money is really there; a proof reserved
   by a swap still pending may be PENDING there (in flight), or SPENT if the mint carried that swap
   out and only its answer was lost: then the value is in the swap's recorded outputs, which the mint
   has signed (NUT-09 restore; for a melt, its quote is PAID), and recovery stores them;
4. no swap, conversion, mint or melt has been left unfinished for long.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select

from routstr.cashu.errors import CashuError
from routstr.cashu.mint_client import MintClient
from routstr.cashu.nut00 import Proof
from routstr.cashu.nut05 import MeltQuoteState
from routstr.core.swap_kinds import HELD, ProofState, SwapKind, SwapState
from routstr.storage import accounts, child_store, wallet_store
from routstr.storage.books import books, held_proofs, ledger_mismatches, stale_operations
from routstr.storage.db import Database
from routstr.storage.schema import proofs
from routstr.wallet.mints import MintRegistry
from routstr.wallet.swaps import prepared_from_record

STALE_AFTER_MS = 10 * 60 * 1000  # recovery runs every minute: older than this needs a look
STATE_BATCH = 100


@dataclass
class AuditReport:
    problems: list[str] = field(default_factory=list)
    books: list[dict[str, object]] = field(default_factory=list)
    proofs_checked: int = 0
    proofs_settling: int = 0  # not unspent at the mint, but by a pending swap's doing (``_explained``)

    @property
    def ok(self) -> bool:
        return not self.problems


async def audit(db: Database, mints: MintRegistry, check_mints: bool = True) -> AuditReport:
    report = AuditReport()
    async with db.read() as conn:
        for key_id, balance, reserved, available, in_flight in await ledger_mismatches(conn):
            report.problems.append(
                f"key {key_id}: stored balance {balance} / reserved {reserved} msat, but its ledger says "
                f"{available} / {in_flight}"
            )
        for key_id, stored, held in await child_store.counter_mismatches(conn):
            report.problems.append(
                f"limited key {key_id}: its limit counts {stored} msat reserved, its reservations {held}"
            )
        for b in await books(conn):
            report.books.append(b.as_dict())
            if b.surplus_msat < 0:
                report.problems.append(
                    f"{b.mint_url} ({b.unit}): holds {b.wallet_msat} msat but owes {b.owed_msat}: "
                    f"short by {-b.surplus_msat}"
                )
        for kind, op_id, mint in await stale_operations(conn, accounts.now_ms() - STALE_AFTER_MS):
            report.problems.append(f"{kind} {op_id} at {mint} is still pending after 10 minutes")
        ours = await held_proofs(conn)
    if check_mints:
        await _check_at_mints(db, mints, ours, report)
    return report


async def _check_at_mints(
    db: Database, mints: MintRegistry, held: list[tuple[str, str, str]], report: AuditReport
) -> None:
    by_mint: dict[str, list[str]] = defaultdict(list)
    ours: dict[str, str] = {}
    for mint, y, state in held:
        by_mint[mint].append(y)
        ours[y] = state
    for mint, ys in by_mint.items():
        if not mints.is_trusted(mint):
            report.problems.append(f"{len(ys)} proofs of {mint}, a mint no longer in CASHU_MINTS")
            continue
        client = mints.client(mint)
        for i in range(0, len(ys), STATE_BATCH):
            batch = ys[i : i + STATE_BATCH]
            try:
                states = await client.check_state(batch)
            except CashuError as e:
                report.problems.append(f"could not check proofs at {mint}: {e}")
                break
            report.proofs_checked += len(batch)
            # a proof reserved for a swap in flight may be PENDING at the mint, or SPENT by that swap
            # if the mint carried it out (its answer lost); any other state is a loss
            spent = [
                y
                for y in batch
                if states.get(y) != "UNSPENT"
                and not (ours[y] == ProofState.RESERVED and states.get(y) == "PENDING")
            ]
            try:
                explained = await _explained(db, mint, client, {y: states.get(y) for y in spent})
            except CashuError as e:
                report.problems.append(f"could not check pending swaps at {mint}: {e}")
                break
            report.proofs_settling += len(explained)
            lost = [y for y in spent if y not in explained]
            if lost:
                report.problems.append(
                    f"{len(lost)} proofs the node counts as its own are not unspent at {mint}"
                )


async def _explained(db: Database, mint: str, client: MintClient, at_mint: dict[str, str | None]) -> set[str]:
    """Which of these proofs (Y -> state at the mint, not unspent) are no loss: the inputs of a
    pending swap that reserved them, spent by that swap, which the mint carried out but whose answer
    was lost (a refund or withdrawal whose recorded outputs the mint has all signed, NUT-09 restore; a
    melt whose quote is PAID): their value is in the swap's outputs and recovery stores it. Read again
    now, a proof no longer the node's (a swap finished since the list was read), or reserved meanwhile
    by a swap the mint holds PENDING, is no loss either."""
    ys = list(at_mint)
    if not ys:
        return set()
    async with db.read() as conn:
        q = select(proofs.c.Y, proofs.c.state, proofs.c.spent_by).where(proofs.c.Y.in_(ys))
        rows = [(str(y), str(state), sid) for y, state, sid in (await conn.execute(q)).all()]
        gone = {y for y, state, _ in rows if state not in HELD}
        spender = {y: str(sid) for y, state, sid in rows if state == ProofState.RESERVED and sid is not None}
        in_flight = {y for y in spender if at_mint[y] == "PENDING"}
        swaps = {sid: await wallet_store.swap_by_id(conn, sid) for sid in set(spender.values())}
    spent_by_swap: set[str] = set()  # the inputs of the swaps the mint carried out
    for swap in swaps.values():
        if swap is not None and swap.mint_url == mint and await _carried_out(client, swap):
            spent_by_swap.update(Proof.from_dict(d).Y for d in swap.inputs)
    return gone | in_flight | {y for y in spender if y in spent_by_swap}


async def _carried_out(client: MintClient, swap: wallet_store.SwapRow) -> bool:
    """Did the mint carry out this pending swap of the node's proofs (its answer never stored)?"""
    if swap.state != SwapState.PENDING:
        return False
    if swap.kind in (SwapKind.REFUND, SwapKind.WITHDRAW):
        prepared = [prepared_from_record(r) for r in swap.outputs]
        signed = {bm.B_ for bm, _ in await client.restore([p.to_blinded_message() for p in prepared])}
        return bool(prepared) and all(p.B_ in signed for p in prepared)
    if swap.kind == SwapKind.MELT:
        quote = str((swap.detail or {}).get("quote", ""))
        return bool(quote) and (await client.melt_quote_state(quote)).state == MeltQuoteState.PAID
    return False
