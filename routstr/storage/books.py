"""Adding up the books per mint and unit (see ``routstr.core.books``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import fields

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core.books import MintBooks
from routstr.storage.schema import api_keys, proofs, swaps


async def books(conn: AsyncConnection) -> list[MintBooks]:
    figures: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    held = select(proofs.c.mint_url, proofs.c.unit, func.sum(proofs.c.amount)).where(
        proofs.c.state.in_(("unspent", "reserved"))
    )
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
        .where(swaps.c.kind == "refund", swaps.c.state == "done", swaps.c.collected.is_(False))
        .group_by(swaps.c.mint_url, swaps.c.unit)
    )
    for mint, unit, n, amount in (await conn.execute(uncollected)).all():
        figures[mint, unit]["uncollected_tokens"] += int(n)
        figures[mint, unit]["uncollected_amount"] += int(amount or 0)
    pending = (
        select(swaps.c.mint_url, swaps.c.unit, swaps.c.kind, func.count(), func.sum(swaps.c.user_amount))
        .where(swaps.c.state == "pending")
        .group_by(swaps.c.mint_url, swaps.c.unit, swaps.c.kind)
    )
    for mint, unit, kind, n, amount in (await conn.execute(pending)).all():
        figures[mint, unit]["pending_swaps"] += int(n)
        if kind in ("refund", "melt"):  # money on its way to a user (token or Lightning payment)
            figures[mint, unit]["pending_refunds"] += int(amount or 0)
    names = [f.name for f in fields(MintBooks) if f.name not in ("mint_url", "unit")]
    return [
        MintBooks(mint, unit, **{n: figures[mint, unit].get(n, 0) for n in names})
        for mint, unit in sorted(figures)
    ]
