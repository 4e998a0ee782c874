"""Finding users' keys: by id, or by pasting the key itself or a Cashu token, and a key's ledger.

A pasted value is hashed the way ``billing/auth.py`` does and only the hash is looked up (nothing
pasted is stored or logged); no answer holds a key or its hash. The queries are in
``storage/admin_queries.py``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.cashu.errors import TokenError
from routstr.cashu.identity import token_identity
from routstr.cashu.tokens import decode_token
from routstr.core.errors import InvalidRequest, NotFound
from routstr.core.keys import bearer_kind, key_hash
from routstr.node import Node
from routstr.operator.ids import MAX_ID, parse_id
from routstr.storage import admin_queries as queries


def search_hashes(secret: bytes, value: str) -> list[str]:
    """The hashes a pasted ``sk-`` key or Cashu token is stored under (400 for anything else)."""
    kind = bearer_kind(value)
    if kind == "sk":
        return [key_hash(secret, value)]
    if kind == "cashu":
        try:
            return [token_identity(secret, decode_token(value))]
        except (TokenError, ValueError):
            raise InvalidRequest("'q' is not a valid Cashu token", details={"param": "q"}) from None
    raise InvalidRequest(
        "'q' must be a key id, an sk-… key or a Cashu token (cashuA…/cashuB…)", details={"param": "q"}
    )


async def search_keys(
    conn: AsyncConnection, secret: bytes, q: str = "", limit: int = 50, before: int | None = None
) -> list[queries.KeySummary]:
    """Keys newest first (``q`` empty), or the one(s) ``q`` names: an id, an ``sk-`` key, a token."""
    q = q.strip()
    if not q:
        return await queries.list_keys(conn, limit, before)
    if q.isascii() and q.isdigit():
        key_id = parse_id(q)
        return [] if key_id is None else await queries.keys_by_id(conn, key_id)  # past int64: nobody's
    return await queries.keys_by_hash(conn, search_hashes(secret, q), limit)


async def key_detail(conn: AsyncConnection, key_id: int, rows: int = 50) -> dict[str, Any]:
    """One key and its latest ledger rows (404 if there is no such key)."""
    found = await queries.keys_by_id(conn, key_id) if 0 < key_id <= MAX_ID else []
    if not found:
        raise NotFound(f"No key with id {key_id}")
    ledger = await queries.key_ledger(conn, key_id, rows)
    return {**found[0].as_dict(), "ledger": [e.as_dict() for e in ledger]}


async def find_keys(
    node: Node, q: str = "", limit: int = 50, before: int | None = None
) -> list[queries.KeySummary]:
    async with node.db.read() as conn:
        return await search_keys(conn, node.auth.secret, q, limit, before)


async def key_with_ledger(node: Node, key_id: int, rows: int = 50) -> dict[str, Any]:
    async with node.db.read() as conn:
        return await key_detail(conn, key_id, rows)
