"""Admin API tokens (stored as HMAC hashes, never as themselves) and the dashboard password's hash."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.storage.accounts import get_setting, now_ms
from routstr.storage.schema import admin_tokens, node_settings

PASSWORD_SETTING = "admin_password_hash"


async def add_token(conn: AsyncConnection, token_hash: str, name: str) -> int:
    res = await conn.execute(
        insert(admin_tokens)
        .values(token_hash=token_hash, name=name, created_at=now_ms())
        .returning(admin_tokens.c.id)
    )
    return int(res.scalar_one())


async def token_is_valid(conn: AsyncConnection, token_hash: str) -> bool:
    row = (
        await conn.execute(
            select(admin_tokens.c.id).where(
                admin_tokens.c.token_hash == token_hash, admin_tokens.c.revoked_at.is_(None)
            )
        )
    ).first()
    return row is not None


async def revoke(conn: AsyncConnection, token_id: int) -> bool:
    res = await conn.execute(
        update(admin_tokens)
        .where(admin_tokens.c.id == token_id, admin_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now_ms())
    )
    return res.rowcount == 1


async def list_tokens(conn: AsyncConnection) -> list[tuple[int, str, int, int | None]]:
    q = select(admin_tokens.c.id, admin_tokens.c.name, admin_tokens.c.created_at, admin_tokens.c.revoked_at)
    return [
        (int(i), str(n), int(c), r)
        for i, n, c, r in (await conn.execute(q.order_by(admin_tokens.c.id))).all()
    ]


async def password_hash(conn: AsyncConnection) -> str | None:
    return await get_setting(conn, PASSWORD_SETTING)


async def set_password_hash(conn: AsyncConnection, hashed: str, *, only_if_unset: bool = False) -> bool:
    """Store the dashboard password's hash; with ``only_if_unset`` keep one already there (False)."""
    current = await get_setting(conn, PASSWORD_SETTING)
    if current is not None:
        if only_if_unset:
            return False
        await conn.execute(
            update(node_settings).where(node_settings.c.name == PASSWORD_SETTING).values(value=hashed)
        )
        return True
    try:
        async with conn.begin_nested():  # another process may be storing its own first hash
            await conn.execute(insert(node_settings).values(name=PASSWORD_SETTING, value=hashed))
    except IntegrityError:
        return False
    return True
