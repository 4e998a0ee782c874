"""Child keys and spending limits outside the hot path: create, reset, read (``key_limits``).

Each function runs inside the caller's transaction. Creating children locks the parent's row first
(so two creations never both pass the count), then charges the fee and inserts the new rows: the lock
order of ``limited_ops`` (``key_limits`` before ``api_keys``) is never reversed, since new rows lock
nothing another transaction holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core import budgets
from routstr.core import ledger as rules
from routstr.core.budgets import Limits
from routstr.core.ids import time_ordered_id
from routstr.storage.schema import api_keys, key_limits, ledger, reservations

MODEL = "child-key"  # the fee's ledger rows, as the dashboard lists them
REF_PREFIX = "child-key-"
MAX_CHILDREN = 1000  # per parent: each is a row, and a parent with no fee to pay could make millions


@dataclass(frozen=True, slots=True)
class Created:
    """The outcome of ``create_children``: ``problem`` is None when the keys exist now."""

    problem: str | None  # "no_key" | "limited" | "too_many" | "balance"
    parent_balance: int = 0
    children: int = 0  # the parent's children before this call


BUDGET_COLS = (
    key_limits.c.key_id,
    key_limits.c.payer_id,
    key_limits.c.balance_limit_msat,
    key_limits.c.limit_reset,
    key_limits.c.resets_at,
    key_limits.c.spent_msat,
    key_limits.c.reserved_msat,
    key_limits.c.valid_until,
)


async def create_children(
    conn: AsyncConnection, parent_id: int, key_hashes: list[str], limits: Limits, fee_msat: int, now: int
) -> Created:
    """Child keys of ``parent_id``, stored by their hashes, with ``fee_msat`` in all charged to the
    parent as the operator's earnings (a ``reserve`` and a ``charge`` row). Nothing is written unless
    all of it is: a refused call leaves no row behind."""
    q = select(
        api_keys.c.kind, api_keys.c.mint_url, api_keys.c.unit, api_keys.c.balance_msat, api_keys.c.limited
    )
    row = (await conn.execute(q.where(api_keys.c.id == parent_id).with_for_update())).first()
    if row is None:
        return Created("no_key")
    kind, mint_url, unit, balance, limited = row
    if limited:
        return Created("limited", int(balance))
    count_q = select(func.count()).select_from(key_limits).where(key_limits.c.payer_id == parent_id)
    children = int((await conn.execute(count_q)).scalar_one())
    if children + len(key_hashes) > MAX_CHILDREN:
        return Created("too_many", int(balance), children)
    if fee_msat > balance:
        return Created("balance", int(balance), children)
    if fee_msat:
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.id == parent_id)
            .values(
                balance_msat=api_keys.c.balance_msat - fee_msat,
                total_spent_msat=api_keys.c.total_spent_msat + fee_msat,
            )
        )
        ref = REF_PREFIX + time_ordered_id()
        rows = [
            {"key_id": parent_id, "kind": kind_, "amount_msat": fee_msat, "request_id": ref, "model": MODEL,
             "created_at": now}
            for kind_ in (rules.RESERVE, rules.CHARGE)
        ]  # fmt: skip
        await conn.execute(insert(ledger), rows)
    for h in key_hashes:
        res = await conn.execute(
            insert(api_keys)
            .values(key_hash=h, kind=kind, mint_url=mint_url, unit=unit, limited=True, created_at=now)
            .returning(api_keys.c.id)
        )
        await _insert_limits(conn, int(res.scalar_one()), parent_id, limits, now)
    return Created(None, int(balance) - fee_msat, children)


async def set_limits(conn: AsyncConnection, key_id: int, limits: Limits, now: int) -> None:
    """Give a key of its own (no parent) a spending limit: ``POST /v1/balance/create`` with
    ``balance_limit`` / ``balance_limit_reset`` / ``validity_date``. Call it on a new key, before it
    is handed out (a key with requests in flight would keep their reservations out of its counters)."""
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(limited=True))
    await _insert_limits(conn, key_id, key_id, limits, now)


async def _insert_limits(conn: AsyncConnection, key_id: int, payer_id: int, limits: Limits, now: int) -> None:
    resets_at = budgets.next_reset(limits.period, now) if limits.period else None
    await conn.execute(
        insert(key_limits).values(
            key_id=key_id,
            payer_id=payer_id,
            balance_limit_msat=limits.limit_msat,
            limit_reset=limits.period,
            resets_at=resets_at,
            valid_until=limits.valid_until,
            created_at=now,
        )
    )


async def budget_of(conn: AsyncConnection, key_id: int) -> budgets.Budget | None:
    row = (await conn.execute(select(*BUDGET_COLS).where(key_limits.c.key_id == key_id))).first()
    if row is None:
        return None
    k, payer, limit, period, resets_at, spent, reserved, valid = row
    return budgets.Budget(int(k), int(payer), limit, period, resets_at, int(spent), int(reserved), valid)


async def payer_of(conn: AsyncConnection, key_id: int) -> int:
    """The key whose balance this key spends: its parent for a child key, else itself. A top-up made
    with a child key credits this one."""
    q = select(key_limits.c.payer_id).where(key_limits.c.key_id == key_id)
    row = (await conn.execute(q)).first()
    return int(row[0]) if row else key_id


async def is_child(conn: AsyncConnection, key_id: int) -> bool:
    return await payer_of(conn, key_id) != key_id


async def child_by_hash(conn: AsyncConnection, parent_id: int, khash: str) -> int | None:
    """The id of the child key with this hash, if it is a child of ``parent_id`` (else None)."""
    q = (
        select(key_limits.c.key_id)
        .join(api_keys, api_keys.c.id == key_limits.c.key_id)
        .where(
            api_keys.c.key_hash == khash, key_limits.c.payer_id == parent_id, key_limits.c.key_id != parent_id
        )
    )
    row = (await conn.execute(q)).first()
    return int(row[0]) if row else None


async def reset_spent(conn: AsyncConnection, key_id: int, now: int) -> None:
    """A new period for the key from now on: nothing spent yet (its requests in flight stay held)."""
    b = await budget_of(conn, key_id)
    if b is None:
        return
    resets_at = budgets.next_reset(b.period, now) if b.period else None
    await conn.execute(
        update(key_limits).where(key_limits.c.key_id == key_id).values(spent_msat=0, resets_at=resets_at)
    )


async def limit_fields(conn: AsyncConnection, key_id: int, now: int) -> dict[str, Any] | None:
    """The balance-info fields of a limited key (None for a key without limits). ``balance`` is what
    it can spend now: its payer's available balance within its room this period (0 once expired)."""
    b = await budget_of(conn, key_id)
    if b is None:
        return None
    q = select(api_keys.c.balance_msat).where(api_keys.c.id == b.payer_id)
    payer_balance = int((await conn.execute(q)).scalar_one_or_none() or 0)
    totals_q = select(key_limits.c.total_spent_msat, key_limits.c.total_requests).where(
        key_limits.c.key_id == key_id
    )
    total_spent, total_requests = (await conn.execute(totals_q)).one()
    spent, resets_at = b.current(now)
    return {
        "balance": 0 if b.expired(now) else budgets.capped(payer_balance, b.room(now)),
        "reserved": b.reserved_msat,
        "is_child": b.is_child,
        "balance_limit": b.limit_msat,
        "balance_limit_reset": b.period,
        "balance_limit_resets_at": None if resets_at is None else resets_at // 1000,
        "balance_limit_spent": spent,
        "validity_date": None if b.valid_until is None else b.valid_until // 1000,
        "total_spent": int(total_spent),
        "total_requests": int(total_requests),
    }


async def counter_mismatches(conn: AsyncConnection) -> list[tuple[int, int, int]]:
    """Limited keys whose ``reserved`` differs from their reservations in flight: (key, stored, sum).
    For the audit: the limit's counters move in the reservations' transactions, so they must agree."""
    held_q = (
        select(reservations.c.limit_key_id, func.sum(reservations.c.amount_msat))
        .where(reservations.c.limit_key_id.is_not(None))
        .group_by(reservations.c.limit_key_id)
    )
    held = {int(k): int(v or 0) for k, v in (await conn.execute(held_q)).all()}
    stored = (await conn.execute(select(key_limits.c.key_id, key_limits.c.reserved_msat))).all()
    return [(int(k), int(r), held.get(int(k), 0)) for k, r in stored if int(r) != held.get(int(k), 0)]
