"""A key's balance given to the operator (``POST /v1/balance/donate``).

Written as a charge: a ``reserve`` and a ``charge`` row of the same reference, so the key's ledger
still adds up to its balance (``core.ledger``) and the books see less owed, the node's surplus
(earnings, what ``routstr withdraw`` may take) grows by exactly the donation. The dashboard lists it
as a request of model ``donation``.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core import ledger as rules
from routstr.core.ids import time_ordered_id
from routstr.storage.accounts import now_ms
from routstr.storage.schema import api_keys, ledger

MODEL = "donation"
REF_PREFIX = "donate-"


async def donate(conn: AsyncConnection, key_id: int, amount_msat: int | None) -> tuple[int, int] | None:
    """Take ``amount_msat`` (None: all of it) of the key's available balance as earnings.

    Returns (donated, balance after); None if the balance does not hold the amount. One conditional
    UPDATE: concurrent donations, refunds and requests can never take the balance below zero."""
    if amount_msat is None:
        q = select(api_keys.c.balance_msat).where(api_keys.c.id == key_id)
        row = (await conn.execute(q.with_for_update())).first()
        amount_msat = int(row[0]) if row else 0
    if amount_msat <= 0:
        return None
    res = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.balance_msat >= amount_msat)
        .values(balance_msat=api_keys.c.balance_msat - amount_msat)
        .returning(api_keys.c.balance_msat)
    )
    after = res.first()
    if after is None:
        return None
    ref, t = REF_PREFIX + time_ordered_id(), now_ms()
    rows = [
        {"key_id": key_id, "kind": kind, "amount_msat": amount_msat, "request_id": ref, "model": MODEL,
         "created_at": t}
        for kind in (rules.RESERVE, rules.CHARGE)
    ]  # fmt: skip
    await conn.execute(insert(ledger), rows)
    return amount_msat, int(after[0])
