"""Per-key rate-limit overrides, kept in the database so a whole fleet applies the same ones."""

from __future__ import annotations

import orjson
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.limits import Limits
from routstr.storage.db import Database
from routstr.storage.schema import node_settings

SETTING = "rate_limit_overrides"


def decode(raw: str | None) -> dict[int, Limits]:
    data = orjson.loads(raw) if raw else {}
    return {int(k): Limits(int(v[0]), int(v[1]), int(v[2])) for k, v in data.items()}


async def _raw(conn: AsyncConnection, for_update: bool = False) -> str | None:
    q = select(node_settings.c.value).where(node_settings.c.name == SETTING)
    row = (await conn.execute(q.with_for_update() if for_update else q)).first()
    return str(row[0]) if row else None


async def load(db: Database) -> dict[int, Limits]:
    async with db.read() as conn:
        return decode(await _raw(conn))


async def set_override(db: Database, key_id: int, limits: Limits | None) -> dict[int, Limits]:
    """Set (or, with None, remove) one key's limits; returns all overrides."""
    for _ in range(3):  # a concurrent first write from another process: read again and retry
        try:
            async with db.write() as conn:
                raw = await _raw(conn, for_update=True)  # two processes must not overwrite each other
                current = decode(raw)
                if limits is None:
                    current.pop(key_id, None)
                else:
                    current[key_id] = limits
                value = orjson.dumps(
                    {
                        str(k): [v.requests_per_minute, v.tokens_per_hour, v.concurrent]
                        for k, v in current.items()
                    }
                ).decode()
                if raw is None:
                    await conn.execute(node_settings.insert().values(name=SETTING, value=value))
                else:
                    await conn.execute(
                        update(node_settings).where(node_settings.c.name == SETTING).values(value=value)
                    )
                return current
        except IntegrityError:
            continue
    raise RuntimeError("could not store the rate-limit override")
