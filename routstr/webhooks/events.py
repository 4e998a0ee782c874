"""Deciding events: each is written to the outbox in the same transaction that decides it.

``balance.low`` is found by a scan (once per fleet, every ``WEBHOOK_CHECK_SECONDS``), never on the
request path: a webhook fires when its key's balance (available + reserved, so a request's
reservation does not count as spending) is below its threshold and it has not fired since the balance
was last at or above it. ``key.expired`` is emitted by the key-expiry job in the transaction that ends
the expiry (``wallet/expiry.py``), and by the scan for expired keys with nothing left, which that job
passes by.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.storage import webhook_store as store
from routstr.storage.accounts import now_ms
from routstr.storage.db import Database
from routstr.webhooks.payload import BALANCE_LOW, KEY_EXPIRED, event_body, new_event_id

log = logging.getLogger(__name__)

KEEP_DELIVERIES_MS = 7 * 24 * 3600 * 1000  # finished deliveries are kept a week, then forgotten
NOTHING_LEFT = "none"  # key.expired's payout when the key was empty


async def emit(conn: AsyncConnection, webhook_id: str, event: str, data: dict[str, Any]) -> str:
    """Put one event for one webhook into the outbox (the caller's transaction); its event id."""
    now = now_ms()
    event_id = new_event_id()
    body = event_body(event_id, event, now // 1000, {"webhook_id": webhook_id, **data})
    await store.enqueue(conn, event_id, webhook_id, event, body, now)
    return event_id


async def fire_low_balances(db: Database) -> int:
    async with db.read() as conn:
        candidates = await store.low_balance_due(conn)
    fired = 0
    for webhook_id in candidates:
        async with db.write() as conn:
            state = await store.fire_low(conn, webhook_id)
            if state is not None:
                balance, reserved, threshold = state
                data = {"balance": balance, "reserved": reserved, "threshold": threshold, "unit": "msat"}
                await emit(conn, webhook_id, BALANCE_LOW, data)
                fired += 1
    return fired


async def key_expired(conn: AsyncConnection, key_id: int, payout: str, only_if_empty: bool = False) -> int:
    """Emit key.expired to the key's subscribers, once per expiry, in the caller's transaction.
    ``payout``: what became of the balance (paid, pending, kept, or none when the key was empty)."""
    expires_at, balance = await store.key_expiry(conn, key_id)
    if expires_at is None or (only_if_empty and balance > 0):
        return 0
    emitted = 0
    for webhook_id in await store.expiry_subscribers(conn, key_id):
        if await store.mark_expiry_notified(conn, webhook_id, expires_at):
            data = {"expired_at": expires_at // 1000, "balance": balance, "unit": "msat", "payout": payout}
            await emit(conn, webhook_id, KEY_EXPIRED, data)
            emitted += 1
    return emitted


async def expire_empty_keys(db: Database) -> int:
    async with db.read() as conn:
        keys = await store.expired_empty_keys(conn, now_ms())
    emitted = 0
    for key_id in keys:
        async with db.write() as conn:
            emitted += await key_expired(conn, key_id, NOTHING_LEFT, only_if_empty=True)
    return emitted


async def check(db: Database) -> dict[str, int]:
    """One round of the scan: fire, re-arm after top-ups, empty expired keys, forget old deliveries."""
    counts = {"balance.low": await fire_low_balances(db)}
    cutoff = now_ms() - KEEP_DELIVERIES_MS
    async with db.read() as conn:  # writes only when there is something to write (SQLite has one writer)
        rearm, prune = await store.any_to_rearm(conn), await store.any_to_prune(conn, cutoff)
    if rearm:
        async with db.write() as conn:
            counts["rearmed"] = await store.rearm_low(conn)
    counts["key.expired"] = await expire_empty_keys(db)
    if prune:
        async with db.write() as conn:
            counts["pruned"] = await store.prune(conn, cutoff)
    return {k: v for k, v in counts.items() if v}
