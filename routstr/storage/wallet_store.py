"""The node's eCash: proofs it holds and the swaps it sends, in the same database as the balances.

A swap row (with its outputs' secrets and blinding factors) is committed before the swap request
leaves the node; the proofs it yields are written in the same transaction as the credit or the
refund they pay for. So every crash point leaves enough on disk to finish or undo the swap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import case, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core.ids import PROCESS
from routstr.core.swap_kinds import HELD, USER_TOKEN_KINDS, ProofState, SwapKind, SwapState
from routstr.storage.accounts import now_ms
from routstr.storage.schema import api_keys, ledger, proofs, swaps

# the states under their old names (``SwapState`` is the name to use)
PENDING, DONE, FAILED = SwapState.PENDING, SwapState.DONE, SwapState.FAILED
EXACT_MAX_INPUTS = 6  # more inputs than this: split one proof instead (each input may carry a fee)


@dataclass(frozen=True, slots=True)
class SwapRow:
    id: str
    kind: SwapKind
    state: SwapState
    mint_url: str
    unit: str
    key_id: int | None
    token_hash: str | None
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    user_amount: int
    result_token: str | None
    error: str | None
    detail: dict[str, Any] | None = None  # convert: foreign mint and quotes
    created_at: int = 0
    executor: str | None = None
    holder_mark: str | None = None


_SWAP_COLS = (
    swaps.c.id,
    swaps.c.kind,
    swaps.c.state,
    swaps.c.mint_url,
    swaps.c.unit,
    swaps.c.key_id,
    swaps.c.token_hash,
    swaps.c.inputs,
    swaps.c.outputs,
    swaps.c.user_amount,
    swaps.c.result_token,
    swaps.c.error,
    swaps.c.detail,
    swaps.c.created_at,
    swaps.c.executor,
    swaps.c.holder_mark,
)


def _swap(row: Any) -> SwapRow:
    return SwapRow(
        id=row[0],
        kind=SwapKind(row[1]),
        state=SwapState(row[2]),
        mint_url=row[3],
        unit=row[4],
        key_id=row[5],
        token_hash=row[6],
        inputs=orjson.loads(row[7]),
        outputs=orjson.loads(row[8]),
        user_amount=int(row[9]),
        result_token=row[10],
        error=row[11],
        detail=orjson.loads(row[12]) if row[12] else None,
        created_at=int(row[13]),
        executor=row[14],
        holder_mark=row[15],
    )


async def insert_swap(
    conn: AsyncConnection,
    *,
    swap_id: str,
    kind: SwapKind,
    mint_url: str,
    unit: str,
    key_id: int | None,
    token_hash: str | None,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    user_amount: int = 0,
    detail: dict[str, Any] | None = None,
    holder_mark: str | None = None,
) -> None:
    """Record a swap before it is sent (raises IntegrityError if the token was redeemed before)."""
    t = now_ms()
    await conn.execute(
        insert(swaps).values(
            id=swap_id,
            kind=kind,
            state=SwapState.PENDING,
            mint_url=mint_url,
            unit=unit,
            key_id=key_id,
            token_hash=token_hash,
            holder_mark=holder_mark,
            inputs=orjson.dumps(inputs).decode(),
            outputs=orjson.dumps(outputs).decode(),
            user_amount=user_amount,
            detail=orjson.dumps(detail).decode() if detail is not None else None,
            executor=PROCESS,
            created_at=t,
            updated_at=t,
        )
    )


async def swap_by_id(conn: AsyncConnection, swap_id: str) -> SwapRow | None:
    row = (await conn.execute(select(*_SWAP_COLS).where(swaps.c.id == swap_id))).first()
    return _swap(row) if row else None


async def swap_by_token_hash(conn: AsyncConnection, token_hash: str) -> SwapRow | None:
    row = (await conn.execute(select(*_SWAP_COLS).where(swaps.c.token_hash == token_hash))).first()
    return _swap(row) if row else None


async def pending_swaps(conn: AsyncConnection, created_before_ms: int | None = None) -> list[SwapRow]:
    q = select(*_SWAP_COLS).where(swaps.c.state == SwapState.PENDING)
    if created_before_ms is not None:
        q = q.where(swaps.c.created_at < created_before_ms)
    return [_swap(r) for r in (await conn.execute(q)).all()]


async def finish_swap(
    conn: AsyncConnection,
    swap_id: str,
    state: SwapState,
    *,
    key_id: int | None = None,
    result_token: str | None = None,
    error: str | None = None,
    collected: bool = False,
) -> bool:
    """Move a pending swap to its final state; False if another worker finished it first.

    A user's token's proofs (redeem, convert) are wiped as it ends: once spent their secrets are of
    no use to the node, and kept they would let a copy of the database name the token."""
    values: dict[str, Any] = {"state": state, "updated_at": now_ms(), "error": error, "collected": collected}
    values["inputs"] = case((swaps.c.kind.in_(USER_TOKEN_KINDS), "[]"), else_=swaps.c.inputs)
    if key_id is not None:
        values["key_id"] = key_id
    if result_token is not None:
        values["result_token"] = result_token
    res = await conn.execute(
        update(swaps).where(swaps.c.id == swap_id, swaps.c.state == SwapState.PENDING).values(**values)
    )
    return res.rowcount == 1


async def add_proofs(
    conn: AsyncConnection, mint_url: str, unit: str, swap_id: str, new: list[dict[str, Any]]
) -> None:
    """Store proofs the node now owns (dicts with id, amount, secret, C, Y)."""
    if not new:
        return
    t = now_ms()
    await conn.execute(
        insert(proofs),
        [
            {
                "mint_url": mint_url,
                "unit": unit,
                "keyset_id": p["id"],
                "amount": p["amount"],
                "secret": p["secret"],
                "C": p["C"],
                "Y": p["Y"],
                "state": ProofState.UNSPENT,
                "swap_id": swap_id,
                "created_at": t,
            }
            for p in new
        ],
    )


async def take_proofs(
    conn: AsyncConnection, mint_url: str, unit: str, amount: int, swap_id: str
) -> list[dict[str, Any]] | None:
    """Reserve unspent proofs worth at least ``amount`` for ``swap_id``; None if the wallet is short.

    Reads only a few rows whatever the wallet's size. Preferred: one proof per binary digit of the
    amount (nothing to split, the wallet does not grow); else the smallest proof that covers the
    amount (one input, so the least NUT-02 fee); else the largest proofs until they cover it.
    """
    cols = (proofs.c.id, proofs.c.keyset_id, proofs.c.amount, proofs.c.secret, proofs.c.C)
    mine = (proofs.c.mint_url == mint_url, proofs.c.unit == unit, proofs.c.state == ProofState.UNSPENT)

    async def rows(*where: Any, order: Any, limit: int, offset: int = 0) -> list[Any]:
        q = select(*cols).where(*mine, *where).order_by(order).limit(limit).offset(offset)
        return list((await conn.execute(q.with_for_update(skip_locked=True))).all())

    chosen: list[Any] = []
    total = 0
    parts = [1 << i for i in reversed(range(amount.bit_length())) if amount >> i & 1]
    if len(parts) <= EXACT_MAX_INPUTS:  # one proof per binary digit of the amount: nothing to split
        for part in parts:
            found = await rows(proofs.c.amount == part, order=proofs.c.id, limit=1)
            if not found:
                break
            chosen.append(found[0])
            total += part
    if total != amount:
        single = await rows(proofs.c.amount >= amount, order=proofs.c.amount.asc(), limit=1)
        chosen, total = (single, int(single[0][2])) if single else ([], 0)
        offset = 0
        while total < amount:
            page = await rows(order=proofs.c.amount.desc(), limit=256, offset=offset)
            if not page:
                return None
            for r in page:
                chosen.append(r)
                total += int(r[2])
                if total >= amount:
                    break
            offset += len(page)
    ids = [r[0] for r in chosen]
    await conn.execute(
        update(proofs)
        .where(proofs.c.id.in_(ids), proofs.c.state == ProofState.UNSPENT)
        .values(state=ProofState.RESERVED, spent_by=swap_id)
    )
    return [{"id": r[1], "amount": int(r[2]), "secret": r[3], "C": r[4]} for r in chosen]


async def settle_inputs(conn: AsyncConnection, swap_id: str, spent: bool) -> None:
    """After a swap: its reserved inputs become spent, or (if it never happened) unspent again."""
    if spent:
        await conn.execute(update(proofs).where(proofs.c.spent_by == swap_id).values(state=ProofState.SPENT))
    else:
        await conn.execute(
            update(proofs).where(proofs.c.spent_by == swap_id).values(state=ProofState.UNSPENT, spent_by=None)
        )


async def wallet_total(conn: AsyncConnection, mint_url: str, unit: str) -> int:
    row = (
        await conn.execute(
            select(func.coalesce(func.sum(proofs.c.amount), 0)).where(
                proofs.c.mint_url == mint_url,
                proofs.c.unit == unit,
                proofs.c.state.in_(HELD),
            )
        )
    ).first()
    return int(row[0]) if row else 0


async def exposure_units(conn: AsyncConnection, mint_url: str, unit: str) -> int:
    """Units of ``unit`` the node holds at ``mint_url`` plus those redemptions are bringing in now
    (recorded, not finished). One statement, so one snapshot: a redemption that finishes meanwhile is
    counted once, as proofs or as in flight, never neither."""
    held = select(func.coalesce(func.sum(proofs.c.amount), 0)).where(
        proofs.c.mint_url == mint_url, proofs.c.unit == unit, proofs.c.state.in_(HELD)
    )
    coming = select(func.coalesce(func.sum(swaps.c.user_amount), 0)).where(
        swaps.c.kind == SwapKind.REDEEM,
        swaps.c.state == SwapState.PENDING,
        swaps.c.mint_url == mint_url,
        swaps.c.unit == unit,
    )
    row = (await conn.execute(select(held.scalar_subquery() + coming.scalar_subquery()))).first()
    return int(row[0]) if row else 0


async def lock_mint(conn: AsyncConnection, mint_url: str) -> None:
    """Take turns per mint for the rest of this transaction, across every process of a fleet
    (PostgreSQL; SQLite has one writer at a time anyway): a check-then-insert at one mint is atomic."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:m))"), {"m": "mint:" + mint_url})


async def abandon_redeem(conn: AsyncConnection, swap_id: str, *, forget: bool = False) -> None:
    """A redeem swap that never happened: fail it, free the token hash, drop a key it created unfunded.

    Its inputs are the user's still-spendable proofs: they are wiped, not kept. ``forget``: the mint
    refused the token (forged or spent proofs), so the row itself is deleted. Nothing refers to it:
    no proof came of it, no ledger row names it, recovery and the books read pending and done swaps
    only; a row per refusal would let anyone fill the table for free.
    """
    row = (await conn.execute(select(swaps.c.key_id).where(swaps.c.id == swap_id))).first()
    if forget:
        await conn.execute(
            swaps.delete().where(
                swaps.c.id == swap_id, swaps.c.kind == SwapKind.REDEEM, swaps.c.state == SwapState.PENDING
            )
        )
    else:
        await conn.execute(
            update(swaps)
            .where(swaps.c.id == swap_id, swaps.c.state == SwapState.PENDING)
            .values(state=SwapState.FAILED, token_hash=None, key_id=None, inputs="[]", updated_at=now_ms())
        )
    key_id = row[0] if row else None
    if key_id is None:
        return
    used = (await conn.execute(select(ledger.c.id).where(ledger.c.key_id == key_id).limit(1))).first()
    others = (await conn.execute(select(swaps.c.id).where(swaps.c.key_id == key_id).limit(1))).first()
    if used is None and others is None:
        await conn.execute(api_keys.delete().where(api_keys.c.id == key_id, api_keys.c.balance_msat == 0))


async def refund_swaps(conn: AsyncConnection, key_id: int, state: SwapState) -> list[SwapRow]:
    q = select(*_SWAP_COLS).where(
        swaps.c.key_id == key_id, swaps.c.kind == SwapKind.REFUND, swaps.c.state == state
    )
    if state == SwapState.DONE:
        q = q.where(swaps.c.collected.is_(False))
    return [_swap(r) for r in (await conn.execute(q.order_by(swaps.c.created_at))).all()]


async def mark_collected(conn: AsyncConnection, swap_id: str) -> bool:
    """Hand out an uncollected refund token once (False if another request took it)."""
    res = await conn.execute(
        update(swaps).where(swaps.c.id == swap_id, swaps.c.collected.is_(False)).values(collected=True)
    )
    return res.rowcount == 1


async def latest_refund(conn: AsyncConnection, key_id: int) -> SwapRow | None:
    """The key's most recent finished refund (its token may be handed out again: eCash is spent once)."""
    q = (
        select(*_SWAP_COLS)
        .where(swaps.c.key_id == key_id, swaps.c.kind == SwapKind.REFUND, swaps.c.state == SwapState.DONE)
        .order_by(swaps.c.created_at.desc(), swaps.c.id.desc())
        .limit(1)
    )
    row = (await conn.execute(q)).first()
    return _swap(row) if row else None


async def set_detail(conn: AsyncConnection, swap_id: str, detail: dict[str, Any]) -> None:
    await conn.execute(
        update(swaps)
        .where(swaps.c.id == swap_id)
        .values(detail=orjson.dumps(detail).decode(), updated_at=now_ms())
    )


async def converted_since(conn: AsyncConnection, since_ms: int) -> int:
    """Sats credited from foreign-mint conversions since ``since_ms`` (pending ones count too)."""
    row = (
        await conn.execute(
            select(func.coalesce(func.sum(swaps.c.user_amount), 0)).where(
                swaps.c.kind == SwapKind.CONVERT,
                swaps.c.state != SwapState.FAILED,
                swaps.c.created_at >= since_ms,
            )
        )
    ).first()
    return int(row[0]) if row else 0


async def uncollected_swaps(conn: AsyncConnection, kind: SwapKind) -> list[SwapRow]:
    """Finished swaps of ``kind`` whose token was never handed out (e.g. the process died first)."""
    q = select(*_SWAP_COLS).where(
        swaps.c.kind == kind, swaps.c.state == SwapState.DONE, swaps.c.collected.is_(False)
    )
    return [_swap(r) for r in (await conn.execute(q.order_by(swaps.c.created_at))).all()]


async def token_swaps(conn: AsyncConnection) -> list[SwapRow]:
    """Every swap a user's token is recorded by (redeem, convert), for re-keying their identities."""
    q = select(*_SWAP_COLS).where(swaps.c.kind.in_(USER_TOKEN_KINDS), swaps.c.token_hash.is_not(None))
    return [_swap(r) for r in (await conn.execute(q)).all()]


async def rekey_token(conn: AsyncConnection, swap_id: str, old_hash: str, new_hash: str) -> None:
    """A token's swap, and the token key it made (its hash is the token's identity), under a new hash."""
    await conn.execute(update(swaps).where(swaps.c.id == swap_id).values(token_hash=new_hash))
    await conn.execute(update(api_keys).where(api_keys.c.key_hash == old_hash).values(key_hash=new_hash))


async def wipe_ended_token_inputs(conn: AsyncConnection) -> int:
    """Drop the proofs of users' tokens whose swaps have ended (kept by nodes before issue 14)."""
    res = await conn.execute(
        update(swaps)
        .where(swaps.c.kind.in_(USER_TOKEN_KINDS), swaps.c.state != SwapState.PENDING, swaps.c.inputs != "[]")
        .values(inputs="[]")
    )
    return int(res.rowcount or 0)
