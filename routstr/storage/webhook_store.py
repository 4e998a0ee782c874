"""Webhooks and their delivery outbox (``schema.webhooks``, ``schema.webhook_deliveries``).

Each function runs in the caller's transaction. Events are decided by conditional updates (a flag
flips once, a delivery is claimed by one sender), so two processes of a fleet cannot emit the same
crossing twice or send the same delivery at the same moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.storage.schema import api_keys, webhook_deliveries, webhooks

KEY_EXPIRED = "key.expired"  # the one event filtered in SQL (see webhooks.payload)


@dataclass(frozen=True, slots=True)
class WebhookRow:
    id: str
    key_id: int
    url: str
    events: tuple[str, ...]
    low_balance_msat: int | None
    created_at: int


@dataclass(frozen=True, slots=True)
class DueDelivery:
    id: int
    event_id: str
    event: str
    payload: str
    attempts: int
    next_attempt_at: int
    webhook_id: str
    url: str
    secret_sealed: str


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    event_id: str
    webhook_id: str
    event: str
    payload: str
    attempts: int
    next_attempt_at: int | None
    delivered_at: int | None
    gave_up_at: int | None
    last_error: str | None


_COLS = (
    webhooks.c.id,
    webhooks.c.key_id,
    webhooks.c.url,
    webhooks.c.events,
    webhooks.c.low_balance_msat,
    webhooks.c.created_at,
)


def _webhook(r: Any) -> WebhookRow:
    return WebhookRow(str(r[0]), int(r[1]), str(r[2]), tuple(str(r[3]).split(",")), r[4], int(r[5]))


# -- registrations ---------------------------------------------------------------------------------


async def count_for_key(conn: AsyncConnection, key_id: int) -> int:
    """How many webhooks the key has; locks the key's row first on PostgreSQL (``FOR UPDATE``; SQLite's
    write transaction is exclusive already) so concurrent registrations cannot pass the limit together."""
    await conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id).with_for_update())
    q = select(func.count()).select_from(webhooks).where(webhooks.c.key_id == key_id)
    return int((await conn.execute(q)).scalar_one())


async def insert_webhook(
    conn: AsyncConnection,
    webhook_id: str,
    key_id: int,
    url: str,
    events: tuple[str, ...],
    secret_sealed: str,
    low_balance_msat: int | None,
    now: int,
) -> WebhookRow:
    await conn.execute(
        insert(webhooks).values(
            id=webhook_id,
            key_id=key_id,
            url=url,
            events=",".join(events),
            secret_sealed=secret_sealed,
            low_balance_msat=low_balance_msat,
            created_at=now,
        )
    )
    return WebhookRow(webhook_id, key_id, url, events, low_balance_msat, now)


async def webhooks_of_key(conn: AsyncConnection, key_id: int) -> list[WebhookRow]:
    q = select(*_COLS).where(webhooks.c.key_id == key_id).order_by(webhooks.c.created_at, webhooks.c.id)
    return [_webhook(r) for r in (await conn.execute(q)).all()]


async def delete_webhook(conn: AsyncConnection, webhook_id: str, key_id: int) -> bool:
    """Delete the key's webhook and its outbox (pending deliveries die with it); False if the key has
    no such webhook."""
    owned = (webhooks.c.id == webhook_id) & (webhooks.c.key_id == key_id)
    if (await conn.execute(select(webhooks.c.id).where(owned))).first() is None:
        return False
    await conn.execute(delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
    await conn.execute(delete(webhooks).where(owned))
    return True


# -- balance.low -----------------------------------------------------------------------------------

# What a key has once its requests in flight settle, at most: a reservation's dip does not count.
_HELD = api_keys.c.balance_msat + api_keys.c.reserved_msat


def _held_of_owner() -> Any:
    return select(_HELD).where(api_keys.c.id == webhooks.c.key_id).scalar_subquery()


async def low_balance_due(conn: AsyncConnection, limit: int = 500) -> list[str]:
    """Webhooks whose key dropped below their threshold and that have not fired for this crossing."""
    q = (
        select(webhooks.c.id)
        .join(api_keys, api_keys.c.id == webhooks.c.key_id)
        .where(
            webhooks.c.low_balance_msat.is_not(None),
            webhooks.c.low_fired == False,  # noqa: E712 (SQL, not Python)
            _HELD < webhooks.c.low_balance_msat,
        )
        .limit(limit)
    )
    return [str(r[0]) for r in (await conn.execute(q)).all()]


async def fire_low(conn: AsyncConnection, webhook_id: str) -> tuple[int, int, int] | None:
    """Set the webhook's fired flag if its key is still below the threshold and it had not fired:
    (balance, reserved, threshold) msat then; None if another round or process got there first."""
    res = await conn.execute(
        update(webhooks)
        .where(
            webhooks.c.id == webhook_id,
            webhooks.c.low_fired == False,  # noqa: E712
            webhooks.c.low_balance_msat > _held_of_owner(),
        )
        .values(low_fired=True)
    )
    if res.rowcount != 1:
        return None
    row = (
        await conn.execute(
            select(api_keys.c.balance_msat, api_keys.c.reserved_msat, webhooks.c.low_balance_msat)
            .join(api_keys, api_keys.c.id == webhooks.c.key_id)
            .where(webhooks.c.id == webhook_id)
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


_BACK_UP = (webhooks.c.low_fired == True) & (webhooks.c.low_balance_msat <= _held_of_owner())  # noqa: E712


async def any_to_rearm(conn: AsyncConnection) -> bool:
    return (await conn.execute(select(webhooks.c.id).where(_BACK_UP).limit(1))).first() is not None


async def rearm_low(conn: AsyncConnection) -> int:
    """Clear the fired flag of webhooks whose key is back at or above the threshold (a top-up), so
    the next crossing fires again."""
    res = await conn.execute(update(webhooks).where(_BACK_UP).values(low_fired=False))
    return int(res.rowcount)


# -- key.expired -----------------------------------------------------------------------------------


async def key_expiry(conn: AsyncConnection, key_id: int) -> tuple[int | None, int]:
    """The key's expiry (unix ms, None if none) and its available balance."""
    row = (
        await conn.execute(
            select(api_keys.c.expires_at, api_keys.c.balance_msat).where(api_keys.c.id == key_id)
        )
    ).one()
    return row[0], int(row[1])


async def expiry_subscribers(conn: AsyncConnection, key_id: int) -> list[str]:
    q = select(webhooks.c.id).where(webhooks.c.key_id == key_id, webhooks.c.events.contains(KEY_EXPIRED))
    return [str(r[0]) for r in (await conn.execute(q)).all()]


async def mark_expiry_notified(conn: AsyncConnection, webhook_id: str, expires_at: int) -> bool:
    """Record that key.expired was emitted for this expiry; False if it already was."""
    res = await conn.execute(
        update(webhooks)
        .where(
            webhooks.c.id == webhook_id,
            or_(webhooks.c.expiry_notified.is_(None), webhooks.c.expiry_notified != expires_at),
        )
        .values(expiry_notified=expires_at)
    )
    return res.rowcount == 1


async def expired_empty_keys(conn: AsyncConnection, now: int, limit: int = 500) -> list[int]:
    """Keys past their expiry with nothing left (the expiry job passes them by: nothing to pay out)
    that have a key.expired webhook not yet told about this expiry."""
    q = (
        select(api_keys.c.id)
        .distinct()
        .join(webhooks, webhooks.c.key_id == api_keys.c.id)
        .where(
            api_keys.c.expires_at.is_not(None),
            api_keys.c.expires_at <= now,
            api_keys.c.balance_msat == 0,
            webhooks.c.events.contains(KEY_EXPIRED),
            or_(webhooks.c.expiry_notified.is_(None), webhooks.c.expiry_notified != api_keys.c.expires_at),
        )
        .limit(limit)
    )
    return [int(r[0]) for r in (await conn.execute(q)).all()]


# -- the outbox ------------------------------------------------------------------------------------


async def enqueue(
    conn: AsyncConnection, event_id: str, webhook_id: str, event: str, payload: str, now: int
) -> None:
    await conn.execute(
        insert(webhook_deliveries).values(
            event_id=event_id,
            webhook_id=webhook_id,
            event=event,
            payload=payload,
            next_attempt_at=now,
            created_at=now,
        )
    )


async def due(conn: AsyncConnection, now: int, limit: int) -> list[DueDelivery]:
    q = (
        select(
            webhook_deliveries.c.id,
            webhook_deliveries.c.event_id,
            webhook_deliveries.c.event,
            webhook_deliveries.c.payload,
            webhook_deliveries.c.attempts,
            webhook_deliveries.c.next_attempt_at,
            webhooks.c.id,
            webhooks.c.url,
            webhooks.c.secret_sealed,
        )
        .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
        .where(webhook_deliveries.c.next_attempt_at <= now)
        .order_by(webhook_deliveries.c.next_attempt_at)
        .limit(limit)
    )
    return [DueDelivery(*r) for r in (await conn.execute(q)).all()]


async def claim(conn: AsyncConnection, d: DueDelivery, until: int) -> bool:
    """Take the delivery for one attempt: count it and push its next time past the attempt, so no
    other sender picks it meanwhile (a sender that dies leaves it due again at ``until``)."""
    res = await conn.execute(
        update(webhook_deliveries)
        .where(
            webhook_deliveries.c.id == d.id,
            webhook_deliveries.c.next_attempt_at == d.next_attempt_at,
            webhook_deliveries.c.attempts == d.attempts,
        )
        .values(attempts=d.attempts + 1, next_attempt_at=until)
    )
    return res.rowcount == 1


async def delivered(conn: AsyncConnection, delivery_id: int, now: int) -> None:
    await conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(delivered_at=now, next_attempt_at=None, last_error=None)
    )


async def failed(conn: AsyncConnection, delivery_id: int, error: str, retry_at: int | None, now: int) -> None:
    """A failed attempt: try again at ``retry_at``, or give up (``retry_at`` None)."""
    values: dict[str, Any] = {"last_error": error[:500], "next_attempt_at": retry_at}
    if retry_at is None:
        values["gave_up_at"] = now
    await conn.execute(
        update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(**values)
    )


async def deliveries_of(conn: AsyncConnection, webhook_id: str) -> list[DeliveryRow]:
    q = (
        select(
            webhook_deliveries.c.event_id,
            webhook_deliveries.c.webhook_id,
            webhook_deliveries.c.event,
            webhook_deliveries.c.payload,
            webhook_deliveries.c.attempts,
            webhook_deliveries.c.next_attempt_at,
            webhook_deliveries.c.delivered_at,
            webhook_deliveries.c.gave_up_at,
            webhook_deliveries.c.last_error,
        )
        .where(webhook_deliveries.c.webhook_id == webhook_id)
        .order_by(webhook_deliveries.c.id)
    )
    return [DeliveryRow(*r) for r in (await conn.execute(q)).all()]


def _finished_before(before: int) -> Any:
    return and_(webhook_deliveries.c.created_at < before, webhook_deliveries.c.next_attempt_at.is_(None))


async def any_to_prune(conn: AsyncConnection, before: int) -> bool:
    q = select(webhook_deliveries.c.id).where(_finished_before(before)).limit(1)
    return (await conn.execute(q)).first() is not None


async def prune(conn: AsyncConnection, before: int) -> int:
    """Forget finished deliveries (delivered or given up) created before ``before``."""
    res = await conn.execute(delete(webhook_deliveries).where(_finished_before(before)))
    return int(res.rowcount)
