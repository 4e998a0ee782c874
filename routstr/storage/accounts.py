"""Keys, balances and the ledger outside the hot path (credits, refunds, lookups).

Each function runs inside the caller's transaction (``conn``) and writes the ledger row for the
movement it makes, so a balance and its history can never disagree. The per-request statements
(reserve, settle) are in ``ledger_ops.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core import ledger as rules
from routstr.storage.schema import api_keys, ledger, node_settings


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


KEY_COLS = (
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
    row = (await conn.execute(select(*KEY_COLS).where(api_keys.c.key_hash == khash))).first()
    return KeyRow(*row) if row else None


async def key_by_alias(conn: AsyncConnection, alias_hash: str) -> KeyRow | None:
    """The token key whose sk- alias has this hash (looked up only when no key has it as key_hash)."""
    row = (await conn.execute(select(*KEY_COLS).where(api_keys.c.sk_alias_hash == alias_hash))).first()
    return KeyRow(*row) if row else None


async def alias_of(conn: AsyncConnection, key_id: int) -> tuple[str, str | None] | None:
    """A key's (key_hash, sk_alias_hash)."""
    q = select(api_keys.c.key_hash, api_keys.c.sk_alias_hash).where(api_keys.c.id == key_id)
    row = (await conn.execute(q)).first()
    return (str(row[0]), row[1]) if row else None


async def set_alias(conn: AsyncConnection, key_id: int, alias_hash: str) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(sk_alias_hash=alias_hash))


async def key_by_id(conn: AsyncConnection, key_id: int) -> KeyRow | None:
    row = (await conn.execute(select(*KEY_COLS).where(api_keys.c.id == key_id))).first()
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


async def delete_setting(conn: AsyncConnection, name: str) -> None:
    """Remove a setting (already absent: nothing happens)."""
    await conn.execute(delete(node_settings).where(node_settings.c.name == name))


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


async def set_payout_terms(
    conn: AsyncConnection, key_id: int, refund_address: str | None, expires_at_ms: int | None
) -> None:
    """Remember a key's Refund-LNURL and Key-Expiry-Time (only those the request sent)."""
    values: dict[str, Any] = {}
    if refund_address is not None:
        values["refund_address"] = refund_address
    if expires_at_ms is not None:
        values["expires_at"] = expires_at_ms
    if values:
        await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))


async def expired_keys(conn: AsyncConnection, now: int, limit: int = 100) -> list[tuple[int, str | None]]:
    """Keys past their expiry that still hold something: (id, refund address)."""
    q = (
        select(api_keys.c.id, api_keys.c.refund_address)
        .where(api_keys.c.expires_at.is_not(None), api_keys.c.expires_at <= now, api_keys.c.balance_msat > 0)
        .limit(limit)
    )
    return [(int(i), a) for i, a in (await conn.execute(q)).all()]


async def clear_expiry(conn: AsyncConnection, key_id: int) -> None:
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(expires_at=None))
