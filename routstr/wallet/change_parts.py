"""One X-Cashu request's change, paid out in parts: made, joined into one token, and found unclaimed.

A streamed X-Cashu request pays its change in two parts: what the request cannot cost (the token's
value beyond the reservation) when the stream starts, the rest when it ends (more parts if the mint
was down in between). Each part is a refund swap of the request's one-shot key (``wallet.refund``),
debited and recorded before it is sent. Parts that go to the user in one answer are joined into one
token; and asking again with the original token gives back every part whose proofs are still
unspent at the mint (NUT-07): the change the user has not claimed yet, none of what they redeemed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.cashu.errors import CashuError
from routstr.cashu.tokens import Token, decode_token, encode_token_v4
from routstr.core.errors import ServiceUnavailable
from routstr.core.swap_kinds import SwapKind, SwapState
from routstr.storage.db import Database
from routstr.storage.schema import swaps
from routstr.wallet.mints import MintRegistry
from routstr.wallet.refund import Refund


def join(parts: Sequence[Refund]) -> Refund | None:
    """Parts of one key's change (same mint and unit) as one token; a single part is kept as it is."""
    if len(parts) <= 1:
        return parts[0] if parts else None
    first = parts[0]
    if any(p.mint_url != first.mint_url or p.unit != first.unit for p in parts):
        raise ValueError("change parts of different mints or units cannot be joined")
    proofs = [proof for p in parts for proof in decode_token(p.token).proofs]
    token = encode_token_v4(Token(mint=first.mint_url, unit=first.unit, proofs=proofs))
    return Refund(
        token,
        sum(p.amount for p in parts),
        first.unit,
        first.mint_url,
        sum(p.debited_msat for p in parts),
    )


@dataclass(frozen=True, slots=True)
class Part:
    """A change token the node made for a key (a finished refund swap)."""

    token: str
    amount: int
    unit: str
    mint_url: str


async def parts_of(conn: AsyncConnection, key_id: int) -> list[Part]:
    """Every change token made for the key, oldest first."""
    q = (
        select(swaps.c.result_token, swaps.c.user_amount, swaps.c.unit, swaps.c.mint_url)
        .where(
            swaps.c.key_id == key_id,
            swaps.c.kind == SwapKind.REFUND,
            swaps.c.state == SwapState.DONE,
            swaps.c.result_token.is_not(None),
        )
        .order_by(swaps.c.created_at, swaps.c.id)
    )
    return [Part(r[0], int(r[1]), r[2], r[3]) for r in (await conn.execute(q)).all()]


async def unclaimed(db: Database, mints: MintRegistry, key_id: int) -> Refund | None:
    """The key's change still unspent at the mint, as one token (a part wholly unspent keeps its own
    token string); None if there is none, or all of it was redeemed. Nothing is debited here."""
    async with db.read() as conn:
        parts = await parts_of(conn, key_id)
    if not parts:
        return None
    decoded = [decode_token(p.token) for p in parts]
    try:
        if not mints.is_trusted(parts[0].mint_url):  # the operator dropped the mint: nothing to ask
            raise CashuError("mint no longer configured")
        states = await mints.client(parts[0].mint_url).check_state([q.Y for t in decoded for q in t.proofs])
    except CashuError:
        raise ServiceUnavailable(
            "The mint is unavailable; your change is kept, try again shortly", code="mint_unavailable"
        ) from None
    kept = [[q for q in t.proofs if states.get(q.Y) == "UNSPENT"] for t in decoded]
    proofs = [q for k in kept for q in k]
    if not proofs:
        return None
    holding = [i for i, k in enumerate(kept) if k]
    if len(holding) == 1 and len(kept[holding[0]]) == len(decoded[holding[0]].proofs):
        p = parts[holding[0]]  # one part, untouched: the very token handed out before
        return Refund(p.token, p.amount, p.unit, p.mint_url, 0)
    first = parts[0]
    token = encode_token_v4(Token(mint=first.mint_url, unit=first.unit, proofs=proofs))
    return Refund(token, sum(q.amount for q in proofs), first.unit, first.mint_url, 0)
