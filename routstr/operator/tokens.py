"""Admin tokens, for scripts using ``/admin/api/*``: made here, only their HMAC stored.

Created by ``routstr admin-token create``, the dashboard's settings page or ``POST /admin/api/tokens``;
a request carries one as ``Authorization: Bearer rta-…``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core.errors import InvalidRequest
from routstr.storage import admin_store

TOKEN_PREFIX = "rta-"
NAME_MAX = 64


def new_admin_token() -> str:
    return TOKEN_PREFIX + secrets.token_hex(24)


def admin_token_hash(secret: bytes, token: str) -> str:
    return hmac.new(secret, b"admin:" + token.encode(), hashlib.sha256).hexdigest()


async def create_admin_token(conn: AsyncConnection, secret: bytes, name: str) -> tuple[int, str]:
    """A new token and its id; only its HMAC is stored, so this is the one time it is seen."""
    token = new_admin_token()
    return await admin_store.add_token(conn, admin_token_hash(secret, token), name), token


async def token_is_live(conn: AsyncConnection, secret: bytes, token: str) -> bool:
    """Whether ``token`` is one of ours and not revoked (looked up by its HMAC)."""
    return await admin_store.token_is_valid(conn, admin_token_hash(secret, token))


def token_rows(rows: list[tuple[int, str, int, int | None]]) -> list[dict[str, Any]]:
    return [{"id": i, "name": n, "created_at": c, "revoked_at": r} for i, n, c, r in rows]


def token_name(raw: Any) -> str:
    """A label for the operator's eyes; it grants nothing, so only its shape is checked."""
    name = raw.strip() if isinstance(raw, str) else ""
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise InvalidRequest(f"'name' must be 1-{NAME_MAX} printable characters", details={"param": "name"})
    return name
