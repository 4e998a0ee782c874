"""Dashboard sessions in the database, so every process of a fleet honours the same login.

Only the HMAC of a session cookie is stored (``id_hash``): a leaked table does not log anyone in.
A session lives ``ttl`` after its last use; using it pushes the expiry on at most once a minute.
"""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.storage.schema import admin_sessions

TOUCH_EVERY_MS = 60_000


async def create(conn: AsyncConnection, id_hash: str, now: int, ttl_ms: int) -> None:
    await conn.execute(
        insert(admin_sessions).values(id_hash=id_hash, created_at=now, expires_at=now + ttl_ms, seen_at=now)
    )


async def use(conn: AsyncConnection, id_hash: str, now: int, ttl_ms: int) -> bool:
    """True if the session is valid now (and keeps it alive)."""
    row = (
        await conn.execute(
            select(admin_sessions.c.expires_at, admin_sessions.c.seen_at).where(
                admin_sessions.c.id_hash == id_hash
            )
        )
    ).first()
    if row is None or int(row[0]) <= now:
        return False
    if now - int(row[1]) >= TOUCH_EVERY_MS:
        await conn.execute(
            update(admin_sessions)
            .where(admin_sessions.c.id_hash == id_hash)
            .values(seen_at=now, expires_at=now + ttl_ms)
        )
    return True


async def end(conn: AsyncConnection, id_hash: str) -> None:
    await conn.execute(delete(admin_sessions).where(admin_sessions.c.id_hash == id_hash))


async def end_all_but(conn: AsyncConnection, keep: str | None) -> int:
    """Log out every other session (after a password change)."""
    q = delete(admin_sessions)
    if keep is not None:
        q = q.where(admin_sessions.c.id_hash != keep)
    return int((await conn.execute(q)).rowcount or 0)


async def purge_expired(conn: AsyncConnection, now: int) -> int:
    res = await conn.execute(delete(admin_sessions).where(admin_sessions.c.expires_at <= now))
    return int(res.rowcount or 0)
