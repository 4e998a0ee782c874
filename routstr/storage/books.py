"""Adding up the books per mint and unit (see ``routstr.core.books``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import fields

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core.books import MintBooks
from routstr.core.ledger import balances_from
from routstr.core.money import UNIT_MSAT
from routstr.core.swap_kinds import HELD, PAYOUT_KINDS, SwapKind, SwapState
from routstr.storage.schema import api_keys, ledger, proofs, swaps


async def books(conn: AsyncConnection) -> list[MintBooks]:
    figures: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    held = select(proofs.c.mint_url, proofs.c.unit, func.sum(proofs.c.amount)).where(proofs.c.state.in_(HELD))
    for mint, unit, total in (await conn.execute(held.group_by(proofs.c.mint_url, proofs.c.unit))).all():
        figures[mint, unit]["wallet"] += int(total or 0)
    keys = select(
        api_keys.c.mint_url,
        api_keys.c.unit,
        api_keys.c.kind,
        func.sum(api_keys.c.balance_msat),
        func.sum(api_keys.c.reserved_msat),
    ).where(api_keys.c.mint_url.is_not(None))
    by_key = keys.group_by(api_keys.c.mint_url, api_keys.c.unit, api_keys.c.kind)
    for mint, unit, kind, balance, reserved in (await conn.execute(by_key)).all():
        f = figures[mint, unit]
        f["balances_msat"] += int(balance or 0)
        f["reserved_msat"] += int(reserved or 0)
        if kind == "xcashu":
            f["xcashu_change_msat"] += int(balance or 0)
    uncollected = (
        select(swaps.c.mint_url, swaps.c.unit, func.count(), func.sum(swaps.c.user_amount))
        .where(swaps.c.kind == SwapKind.REFUND, swaps.c.state == SwapState.DONE, swaps.c.collected.is_(False))
        .group_by(swaps.c.mint_url, swaps.c.unit)
    )
    for mint, unit, n, amount in (await conn.execute(uncollected)).all():
        figures[mint, unit]["uncollected_tokens"] += int(n)
        figures[mint, unit]["uncollected_amount"] += int(amount or 0)
    pending = (
        select(swaps.c.mint_url, swaps.c.unit, swaps.c.kind, func.count(), func.sum(swaps.c.user_amount))
        .where(swaps.c.state == SwapState.PENDING)
        .group_by(swaps.c.mint_url, swaps.c.unit, swaps.c.kind)
    )
    for mint, unit, kind, n, amount in (await conn.execute(pending)).all():
        figures[mint, unit]["pending_swaps"] += int(n)
        if kind in PAYOUT_KINDS:  # money on its way to a user (token or Lightning payment)
            figures[mint, unit]["pending_refunds"] += int(amount or 0)
    names = [f.name for f in fields(MintBooks) if f.name not in ("mint_url", "unit")]
    return [
        MintBooks(mint, unit, **{n: figures[mint, unit].get(n, 0) for n in names})
        for mint, unit in sorted(figures)
    ]


async def ledger_mismatches(conn: AsyncConnection) -> list[tuple[int, int, int, int, int]]:
    """Keys whose stored balance or reservation differs from their ledger:
    (key id, stored available, stored reserved, ledger available, ledger reserved)."""
    sums: dict[int, dict[str, int]] = defaultdict(dict)
    q = select(ledger.c.key_id, ledger.c.kind, func.sum(ledger.c.amount_msat)).group_by(
        ledger.c.key_id, ledger.c.kind
    )
    for key_id, kind, total in (await conn.execute(q)).all():
        sums[int(key_id)][str(kind)] = int(total or 0)
    bad = []
    keys = select(api_keys.c.id, api_keys.c.balance_msat, api_keys.c.reserved_msat)
    for key_id, balance, reserved in (await conn.execute(keys)).all():
        available, held = balances_from(sums.get(int(key_id), {}))
        if (available, held) != (int(balance), int(reserved)):
            bad.append((int(key_id), int(balance), int(reserved), available, held))
    return bad


async def stale_operations(conn: AsyncConnection, older_than_ms: int) -> list[tuple[str, str, str]]:
    """Swaps (redeem, refund, convert, mint, melt) still pending since before ``older_than_ms``:
    (kind, id, mint)."""
    q = select(swaps.c.kind, swaps.c.id, swaps.c.mint_url).where(
        swaps.c.state == SwapState.PENDING, swaps.c.created_at < older_than_ms
    )
    return [(str(k), str(i), str(m)) for k, i, m in (await conn.execute(q)).all()]


async def held_proofs(conn: AsyncConnection) -> list[tuple[str, str, str]]:
    """(mint, Y, state) of every proof the node counts as its own (unspent or reserved)."""
    q = select(proofs.c.mint_url, proofs.c.Y, proofs.c.state).where(proofs.c.state.in_(HELD))
    return [(str(m), str(y), str(s)) for m, y, s in (await conn.execute(q)).all()]


async def earnings_units(conn: AsyncConnection, mint_url: str, unit: str) -> int:
    """The node's own money at ``mint_url`` in whole ``unit``s: what it may withdraw (never below 0)."""
    for b in await books(conn):
        if (b.mint_url, b.unit) == (mint_url, unit):
            return max(b.surplus_msat, 0) // UNIT_MSAT[unit]
    return 0
