"""Keys, balances, reservations and the ledger: every statement that moves a key's money.

Each function runs inside the caller's transaction (``conn``) and writes the ledger row for the
movement it makes, so a balance and its history can never disagree. Reserve is one conditional
UPDATE: it either takes the whole amount or nothing, and cannot take a balance below zero, however
many requests race for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core import ledger as rules
from routstr.storage.schema import api_keys, ledger, node_settings, reservations


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class KeyRow:
    id: int
    kind: str
    mint_url: str | None
    unit: str
    balance_msat: int
    reserved_msat: int
    total_spent_msat: int
    total_requests: int


_KEY_COLS = (
    api_keys.c.id,
    api_keys.c.kind,
    api_keys.c.mint_url,
    api_keys.c.unit,
    api_keys.c.balance_msat,
    api_keys.c.reserved_msat,
    api_keys.c.total_spent_msat,
    api_keys.c.total_requests,
)


async def key_by_hash(conn: AsyncConnection, khash: str) -> KeyRow | None:
    row = (await conn.execute(select(*_KEY_COLS).where(api_keys.c.key_hash == khash))).first()
    return KeyRow(*row) if row else None


async def key_by_id(conn: AsyncConnection, key_id: int) -> KeyRow | None:
    row = (await conn.execute(select(*_KEY_COLS).where(api_keys.c.id == key_id))).first()
    return KeyRow(*row) if row else None


async def create_key(conn: AsyncConnection, khash: str, kind: str, mint_url: str | None, unit: str) -> int:
    res = await conn.execute(
        insert(api_keys)
        .values(key_hash=khash, kind=kind, mint_url=mint_url, unit=unit, created_at=now_ms())
        .returning(api_keys.c.id)
    )
    return int(res.scalar_one())


async def credit(conn: AsyncConnection, key_id: int, amount_msat: int, ref: str | None = None) -> None:
    await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values(balance_msat=api_keys.c.balance_msat + amount_msat)
    )
    await _log(conn, key_id, rules.CREDIT, amount_msat, ref)


async def debit_for_refund(conn: AsyncConnection, key_id: int, amount_msat: int, ref: str) -> bool:
    """Take ``amount_msat`` of the available balance for a refund; False if it is not there."""
    res = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.balance_msat >= amount_msat)
        .values(balance_msat=api_keys.c.balance_msat - amount_msat)
    )
    if res.rowcount != 1:
        return False
    await _log(conn, key_id, rules.REFUND, amount_msat, ref)
    return True


async def reserve(
    conn: AsyncConnection, key_id: int, amount_msat: int, request_id: str, model: str, ttl_ms: int
) -> bool:
    """Hold ``amount_msat`` for a request; False (and nothing written) if the balance is short."""
    res = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.balance_msat >= amount_msat)
        .values(
            balance_msat=api_keys.c.balance_msat - amount_msat,
            reserved_msat=api_keys.c.reserved_msat + amount_msat,
        )
    )
    if res.rowcount != 1:
        return False
    t = now_ms()
    await conn.execute(
        insert(reservations).values(
            request_id=request_id, key_id=key_id, amount_msat=amount_msat, created_at=t, expires_at=t + ttl_ms
        )
    )
    await _log(conn, key_id, rules.RESERVE, amount_msat, request_id, model=model, t=t)
    return True


async def settle(
    conn: AsyncConnection,
    key_id: int,
    request_id: str,
    reserved_msat: int,
    cost_msat: int,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
) -> rules.Settlement:
    """Close a reservation: charge the cost, release the rest, all in the caller's transaction."""
    deleted = await conn.execute(reservations.delete().where(reservations.c.request_id == request_id))
    if deleted.rowcount != 1:
        # already released by the expiry sweeper: nothing is held any more, charge only what is free
        reserved_msat = 0
    available = 0
    if cost_msat > reserved_msat:
        q = select(api_keys.c.balance_msat).where(api_keys.c.id == key_id).with_for_update()
        row = (await conn.execute(q)).first()
        available = int(row[0]) if row else 0
    s = rules.settle(reserved_msat, cost_msat, available)
    await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id)
        .values(
            balance_msat=api_keys.c.balance_msat + s.release - s.extra,
            reserved_msat=api_keys.c.reserved_msat - (s.charge - s.extra) - s.release,
            total_spent_msat=api_keys.c.total_spent_msat + s.charge,
            total_requests=api_keys.c.total_requests + 1,
        )
    )
    t = now_ms()
    rows: list[dict[str, Any]] = []
    if s.extra:
        rows.append(_row(key_id, rules.RESERVE, s.extra, request_id, model, None, None, t))
    if s.charge:
        rows.append(
            _row(key_id, rules.CHARGE, s.charge, request_id, model, prompt_tokens, completion_tokens, t)
        )
    if s.release:
        rows.append(_row(key_id, rules.RELEASE, s.release, request_id, model, None, None, t))
    if rows:
        await conn.execute(insert(ledger), rows)
    return s


async def release_expired(conn: AsyncConnection, before_ms: int, limit: int = 500) -> int:
    """Give back reservations whose request can no longer be running (crash, lost process)."""
    stale = (
        await conn.execute(
            select(reservations.c.request_id, reservations.c.key_id, reservations.c.amount_msat)
            .where(reservations.c.expires_at < before_ms)
            .limit(limit)
        )
    ).all()
    for request_id, key_id, amount in stale:
        gone = await conn.execute(reservations.delete().where(reservations.c.request_id == request_id))
        if gone.rowcount != 1:
            continue
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id)
            .values(
                balance_msat=api_keys.c.balance_msat + amount,
                reserved_msat=api_keys.c.reserved_msat - amount,
            )
        )
        await _log(conn, key_id, rules.RELEASE, amount, request_id)
    return len(stale)


def _row(
    key_id: int,
    kind: str,
    amount: int,
    ref: str | None,
    model: str | None,
    pt: int | None,
    ct: int | None,
    t: int,
) -> dict[str, Any]:
    return {
        "key_id": key_id,
        "kind": kind,
        "amount_msat": amount,
        "request_id": ref,
        "model": model,
        "prompt_tokens": pt,
        "completion_tokens": ct,
        "created_at": t,
    }


async def _log(
    conn: AsyncConnection,
    key_id: int,
    kind: str,
    amount: int,
    ref: str | None,
    model: str | None = None,
    t: int | None = None,
) -> None:
    await conn.execute(
        insert(ledger).values(_row(key_id, kind, amount, ref, model, None, None, t or now_ms()))
    )


async def ledger_sums(conn: AsyncConnection, key_id: int) -> dict[str, int]:
    """Sum of each ledger kind for a key (for audits and tests)."""
    rows = (
        await conn.execute(
            select(ledger.c.kind, func.coalesce(func.sum(ledger.c.amount_msat), 0))
            .where(ledger.c.key_id == key_id)
            .group_by(ledger.c.kind)
        )
    ).all()
    return {str(k): int(v) for k, v in rows}


async def get_setting(conn: AsyncConnection, name: str) -> str | None:
    row = (await conn.execute(select(node_settings.c.value).where(node_settings.c.name == name))).first()
    return str(row[0]) if row else None


async def put_setting_if_absent(conn: AsyncConnection, name: str, value: str) -> None:
    if await get_setting(conn, name) is None:
        await conn.execute(insert(node_settings).values(name=name, value=value))


async def refund_amount(conn: AsyncConnection, key_id: int, ref: str) -> int | None:
    """What a refund (by its swap id) took from the key, to give it back if the swap fails."""
    row = (
        await conn.execute(
            select(ledger.c.amount_msat).where(
                ledger.c.key_id == key_id, ledger.c.kind == rules.REFUND, ledger.c.request_id == ref
            )
        )
    ).first()
    return int(row[0]) if row else None


async def key_hash_of(conn: AsyncConnection, key_id: int) -> str | None:
    row = (await conn.execute(select(api_keys.c.key_hash).where(api_keys.c.id == key_id))).first()
    return str(row[0]) if row else None
