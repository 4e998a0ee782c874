"""Per-key rate-limit overrides, one row per key in ``key_rate_limits``, so a whole fleet applies the
same ones (each process loads them: ``routstr/jobs.py``)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.limits import Limits
from routstr.storage.db import Database
from routstr.storage.schema import api_keys, key_rate_limits

_COLS = (
    key_rate_limits.c.key_id,
    key_rate_limits.c.requests_per_minute,
    key_rate_limits.c.tokens_per_hour,
    key_rate_limits.c.concurrent,
)


async def read(conn: AsyncConnection, key_ids: list[int] | None = None) -> dict[int, Limits]:
    """The overrides (of ``key_ids`` only, if given)."""
    q = select(*_COLS)
    if key_ids is not None:
        q = q.where(key_rate_limits.c.key_id.in_(key_ids))
    rows = (await conn.execute(q)).all()
    return {
        int(r.key_id): Limits(int(r.requests_per_minute), int(r.tokens_per_hour), int(r.concurrent))
        for r in rows
    }


async def load(db: Database) -> dict[int, Limits]:
    async with db.read() as conn:
        return await read(conn)


async def set_override(db: Database, key_id: int, limits: Limits | None) -> dict[int, Limits] | None:
    """Set (or, with None, remove) one key's limits; returns all overrides, or None when setting the
    limits of a key that does not exist."""
    values = (
        None
        if limits is None
        else {
            "requests_per_minute": limits.requests_per_minute,
            "tokens_per_hour": limits.tokens_per_hour,
            "concurrent": limits.concurrent,
        }
    )
    for _ in range(3):  # two first writes for one key at once: the loser finds the row and updates it
        try:
            async with db.write() as conn:
                if values is None:
                    await conn.execute(delete(key_rate_limits).where(key_rate_limits.c.key_id == key_id))
                    return await read(conn)
                if (await conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id))).first() is None:
                    return None
                q = update(key_rate_limits).where(key_rate_limits.c.key_id == key_id).values(**values)
                if (await conn.execute(q)).rowcount == 0:
                    await conn.execute(insert(key_rate_limits).values(key_id=key_id, **values))
                return await read(conn)
        except IntegrityError:
            continue
    raise RuntimeError("could not store the rate-limit override")
