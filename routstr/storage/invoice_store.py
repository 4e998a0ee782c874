"""Lightning invoices (top-ups through the primary mint's NUT-04 quotes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.storage.accounts import now_ms
from routstr.storage.schema import invoices

PENDING, SETTLED, EXPIRED = "pending", "settled", "expired"


@dataclass(frozen=True, slots=True)
class InvoiceRow:
    id: str
    quote_id: str
    mint_url: str
    unit: str
    amount: int
    bolt11: str
    purpose: str
    key_id: int | None
    state: str
    swap_id: str | None
    expires_at: int | None
    created_at: int
    payment_hash: str | None
    paid_at: int | None
    api_key_sealed: str | None = field(repr=False)  # topup: the key it was made with, sealed


_COLS = (
    invoices.c.id,
    invoices.c.quote_id,
    invoices.c.mint_url,
    invoices.c.unit,
    invoices.c.amount,
    invoices.c.bolt11,
    invoices.c.purpose,
    invoices.c.key_id,
    invoices.c.state,
    invoices.c.swap_id,
    invoices.c.expires_at,
    invoices.c.created_at,
    invoices.c.payment_hash,
    invoices.c.paid_at,
    invoices.c.api_key_sealed,
)


def _row(r: Any) -> InvoiceRow:
    return InvoiceRow(*r)


async def insert_invoice(conn: AsyncConnection, **values: Any) -> None:
    t = now_ms()
    await conn.execute(insert(invoices).values(state=PENDING, created_at=t, updated_at=t, **values))


async def invoice_by_id(conn: AsyncConnection, invoice_id: str) -> InvoiceRow | None:
    r = (await conn.execute(select(*_COLS).where(invoices.c.id == invoice_id))).first()
    return _row(r) if r else None


async def invoices_by_payment_hash(conn: AsyncConnection, payment_hash: str) -> list[InvoiceRow]:
    """Usually one; the same invoice at two mints (or a mint that reuses hashes) gives more."""
    q = select(*_COLS).where(invoices.c.payment_hash == payment_hash).limit(10)
    return [_row(r) for r in (await conn.execute(q)).all()]


async def invoice_by_swap(conn: AsyncConnection, swap_id: str) -> InvoiceRow | None:
    r = (await conn.execute(select(*_COLS).where(invoices.c.swap_id == swap_id))).first()
    return _row(r) if r else None


async def pending_invoices(conn: AsyncConnection, limit: int = 500) -> list[InvoiceRow]:
    q = select(*_COLS).where(invoices.c.state == PENDING).order_by(invoices.c.created_at).limit(limit)
    return [_row(r) for r in (await conn.execute(q)).all()]


async def claim_for_minting(conn: AsyncConnection, invoice_id: str, swap_id: str, key_id: int) -> bool:
    """Attach the mint step to a paid invoice, once: False if another request (or process) did."""
    res = await conn.execute(
        update(invoices)
        .where(invoices.c.id == invoice_id, invoices.c.swap_id.is_(None), invoices.c.state == PENDING)
        .values(swap_id=swap_id, key_id=key_id, updated_at=now_ms())
    )
    return res.rowcount == 1


async def set_state(conn: AsyncConnection, invoice_id: str, state: str) -> None:
    """Leave ``pending`` (once); settling also records when it was paid."""
    t = now_ms()
    paid = {"paid_at": t} if state == SETTLED else {}
    await conn.execute(
        update(invoices)
        .where(invoices.c.id == invoice_id, invoices.c.state == PENDING)
        .values(state=state, updated_at=t, **paid)
    )
