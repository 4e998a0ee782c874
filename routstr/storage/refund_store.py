"""A key's refund tokens that may still be unspent (``wallet/refund.py`` hands them out again).

A refund token stays "open" until the mint says it was spent (``swaps.spent_at`` is then set), so a
client that lost the answer gets the same token back instead of losing it, and a new refund is made
only once the last one was taken. Reads go through ``ix_swaps_key_id``.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core.swap_kinds import SwapKind, SwapState
from routstr.storage.accounts import now_ms
from routstr.storage.schema import swaps
from routstr.storage.wallet_store import _SWAP_COLS, SwapRow, _swap

# open refunds looked at per call: normally one at most (a new one waits for the last to be spent)
OPEN_LIMIT = 10


async def open_refunds(conn: AsyncConnection, key_id: int) -> list[SwapRow]:
    """The key's finished refunds whose token was not seen spent yet, oldest first."""
    q = (
        select(*_SWAP_COLS)
        .where(
            swaps.c.key_id == key_id,
            swaps.c.kind == SwapKind.REFUND,
            swaps.c.state == SwapState.DONE,
            swaps.c.spent_at.is_(None),
            swaps.c.result_token.is_not(None),
        )
        .order_by(swaps.c.created_at, swaps.c.id)
        .limit(OPEN_LIMIT)
    )
    return [_swap(r) for r in (await conn.execute(q)).all()]


async def mark_spent(conn: AsyncConnection, swap_ids: list[str]) -> None:
    """The mint said these refunds' tokens were spent: they are the user's now, never handed out again."""
    if swap_ids:
        await conn.execute(
            update(swaps)
            .where(swaps.c.id.in_(swap_ids), swaps.c.spent_at.is_(None))
            .values(spent_at=now_ms())
        )
