"""A key's money in and out (``GET /v1/balance/history``): its deposits, refunds and payouts.

Read from the key's swaps (through ``ix_swaps_key_id``, newest first) and, for each, the ledger rows
naming it (``ix_ledger_request_id``): what the key was credited or debited, in msat. Nothing of a
swap's proofs, tokens or other keys is read. Per-request charges are not here (``total_spent`` and
``total_requests`` sum them); neither are donations.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core import ledger as rules
from routstr.storage.schema import ledger, swaps

# swap kind -> (type, source) in the history
KINDS = {
    "redeem": ("deposit", "cashu"),
    "convert": ("deposit", "cashu"),  # a foreign mint's token, converted over Lightning
    "mint": ("deposit", "lightning"),
    "refund": ("refund", "cashu"),
    "melt": ("payout", "lightning"),
}
_IN = ("redeem", "convert", "mint")
_OUT = ("refund", "melt")


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    type: str  # deposit | refund | payout
    source: str  # cashu | lightning
    amount: int  # msat credited (deposit) or taken (refund, payout: its fees included)
    unit: str  # "msat"
    mint_url: str
    created_at: int  # unix seconds
    collected: bool  # the money reached its owner: a deposit credited, a refund token handed out
    swept: bool  # always False: this node never takes a handed-out token back
    state: str  # done | pending (a refund or payout the mint has not settled yet)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def cursor_of(conn: AsyncConnection, key_id: int, entry_id: str) -> tuple[int, str] | None:
    """Where a page that ends at ``entry_id`` (one of this key's entries) continues."""
    q = select(swaps.c.created_at, swaps.c.id).where(swaps.c.id == entry_id, swaps.c.key_id == key_id)
    row = (await conn.execute(q)).first()
    return (int(row[0]), str(row[1])) if row else None


async def history(
    conn: AsyncConnection, key_id: int, limit: int, before: tuple[int, str] | None = None
) -> list[Entry]:
    """The key's entries newest first, at most ``limit``, older than ``before`` (created_at, id)."""
    shown = or_(
        and_(swaps.c.kind.in_(_IN), swaps.c.state == "done"),
        and_(swaps.c.kind.in_(_OUT), swaps.c.state.in_(("done", "pending"))),
    )
    q = select(
        swaps.c.id,
        swaps.c.kind,
        swaps.c.state,
        swaps.c.mint_url,
        swaps.c.detail,
        swaps.c.collected,
        swaps.c.created_at,
    ).where(swaps.c.key_id == key_id, shown)
    if before is not None:
        q = q.where(tuple_(swaps.c.created_at, swaps.c.id) < tuple_(*before))
    rows = (await conn.execute(q.order_by(swaps.c.created_at.desc(), swaps.c.id.desc()).limit(limit))).all()
    moved = await _moved(conn, key_id, [str(r.id) for r in rows])
    out = []
    for r in rows:
        kind_type, source = KINDS[str(r.kind)]
        sums = moved.get(str(r.id), {})
        if kind_type == "deposit":
            amount = sums.get(rules.CREDIT, 0)
        else:  # a payout's unused fee reserve came back as a credit
            amount = sums.get(rules.REFUND, 0) - sums.get(rules.CREDIT, 0)
        out.append(
            Entry(
                id=str(r.id),
                type=kind_type,
                source=source,
                amount=amount,
                unit="msat",
                mint_url=_mint(str(r.kind), str(r.mint_url), r.detail),
                created_at=int(r.created_at) // 1000,
                collected=kind_type != "refund" or bool(r.collected),
                swept=False,
                state=str(r.state),
            )
        )
    return out


async def _moved(conn: AsyncConnection, key_id: int, refs: list[str]) -> dict[str, dict[str, int]]:
    """Per swap id: msat credited to and taken from the key (its ledger rows name the swap)."""
    if not refs:
        return {}
    q = (
        select(ledger.c.request_id, ledger.c.kind, func.sum(ledger.c.amount_msat))
        .where(ledger.c.request_id.in_(refs), ledger.c.key_id == key_id)
        .where(ledger.c.kind.in_((rules.CREDIT, rules.REFUND)))
        .group_by(ledger.c.request_id, ledger.c.kind)
    )
    sums: dict[str, dict[str, int]] = defaultdict(dict)
    for ref, kind, total in (await conn.execute(q)).all():
        sums[str(ref)][str(kind)] = int(total or 0)
    return sums


def _mint(kind: str, mint_url: str, detail: str | None) -> str:
    """The mint the money came from: a converted token's own mint, else the swap's."""
    if kind == "convert" and detail:
        foreign = orjson.loads(detail).get("foreign_mint")
        if isinstance(foreign, str):
            return foreign
    return mint_url
