"""Checking the books: does the node hold what it owes, and does the ledger explain every balance?

1. every key's balance and reservation equal what its ledger rows add up to;
2. per mint and unit, the proofs the node holds cover what it owes (no shortfall);
3. those proofs are unspent at their mints (NUT-07), so the money is really there;
4. no swap, conversion, mint or melt has been left unfinished for long.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from routstr.cashu.errors import CashuError
from routstr.core.swap_kinds import ProofState
from routstr.storage import accounts, child_store
from routstr.storage.books import books, held_proofs, ledger_mismatches, stale_operations
from routstr.storage.db import Database
from routstr.wallet.mints import MintRegistry

STALE_AFTER_MS = 10 * 60 * 1000  # recovery runs every minute: older than this needs a look
STATE_BATCH = 100


@dataclass
class AuditReport:
    problems: list[str] = field(default_factory=list)
    books: list[dict[str, object]] = field(default_factory=list)
    proofs_checked: int = 0

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
        await _check_at_mints(mints, ours, report)
    return report


async def _check_at_mints(mints: MintRegistry, held: list[tuple[str, str, str]], report: AuditReport) -> None:
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
            # a proof reserved for a swap in flight may be PENDING at the mint; any other state is a loss
            spent = [
                y
                for y in batch
                if states.get(y) != "UNSPENT"
                and not (ours[y] == ProofState.RESERVED and states.get(y) == "PENDING")
            ]
            if spent:
                report.problems.append(
                    f"{len(spent)} proofs the node counts as its own are not unspent at {mint}"
                )
