"""The operator's view of keys, requests, figures and mints (``/admin/api/keys``, ``/requests``,
``/overview``, ``/mints``), read-only.

A key is found by its id, or by pasting the key itself or a Cashu token: the value is hashed the way
``billing/auth.py`` does and only the hash is looked up (nothing pasted is stored or logged), and no
answer holds a key or its hash. The queries are in ``storage/admin_queries.py``; the functions here
take the node, so the dashboard's pages call the same ones.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.api.admin import MAX_ID, parse_id, path_id, require_admin
from routstr.api.catalogue_forms import clean
from routstr.api.info import json_response
from routstr.api.state import Node
from routstr.cashu.errors import TokenError
from routstr.cashu.identity import token_identity
from routstr.cashu.tokens import decode_token
from routstr.core.errors import InvalidRequest, NotFound
from routstr.core.keys import bearer_kind, key_hash
from routstr.storage import admin_queries as queries
from routstr.storage.accounts import now_ms
from routstr.storage.books import books

MAX_PAGE = 500


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


async def mints_view(node: Node) -> list[dict[str, Any]]:
    """Each configured mint: health, what the node holds there (its exposure, against the limit) and
    the books per unit."""
    async with node.db.read() as conn:
        all_books = await books(conn)
    out = []
    for url in node.mints.urls:
        h = node.mints.health[url]
        mine = [b for b in all_books if b.mint_url == url]
        out.append(
            {
                "url": url,
                "primary": url == node.mints.primary,
                "up": h.up,
                "checked_at": h.checked_at or None,
                "error": h.error or None,
                "exposure_msat": sum(b.wallet_msat for b in mine),
                "max_exposure_msat": node.mints.max_exposure_msat or None,
                "units": [queries.books_entry(b) for b in mine],
            }
        )
    return out


# --- HTTP ---------------------------------------------------------------------------------------


def _int_param(
    request: web.Request, name: str, default: int | None, lo: int = 1, hi: int | None = None
) -> int | None:
    """A whole-number query parameter from ``lo`` to ``hi`` (an id's range unless given), else 400."""
    raw = request.query.get(name, "").strip()
    if not raw:
        return default
    hi = MAX_ID if hi is None else hi
    value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else None
    if value is None or not lo <= value <= hi:
        raise InvalidRequest(f"'{name}' must be a whole number from {lo} to {hi}", details={"param": name})
    return value


def _page(request: web.Request) -> tuple[int, int | None]:
    limit = _int_param(request, "limit", 50, 1, MAX_PAGE)
    assert limit is not None
    return limit, _int_param(request, "before", None)


async def get_keys(request: web.Request) -> web.Response:
    node = await require_admin(request)
    limit, before = _page(request)
    found = await find_keys(node, request.query.get("q", ""), limit, before)
    return json_response(
        {
            "keys": [k.as_dict() for k in found],
            "next_before": found[-1].id if len(found) == limit else None,
        }
    )


async def get_key(request: web.Request) -> web.Response:
    node = await require_admin(request)
    rows = _int_param(request, "ledger", 50, 1, MAX_PAGE)
    assert rows is not None
    return json_response(await key_with_ledger(node, path_id(request, "key_id", "key"), rows))


async def get_requests(request: web.Request) -> web.Response:
    node = await require_admin(request)
    limit, before = _page(request)
    key_id = _int_param(request, "key_id", None)
    model = request.query.get("model") or None
    if model is not None and (len(model) > 255 or not clean(model)):
        raise InvalidRequest("'model' must be a model id (no control characters)", details={"param": "model"})
    async with node.db.read() as conn:
        found = await queries.list_requests(conn, key_id, model, limit, before)
    return json_response(
        {
            "requests": [r.as_dict() for r in found],
            "next_before": found[-1].id if len(found) == limit else None,
        }
    )


async def get_overview(request: web.Request) -> web.Response:
    node = await require_admin(request)
    hours = _int_param(request, "hours", 24, 1, 24 * 31)
    assert hours is not None
    async with node.db.read() as conn:
        figures = await queries.overview(conn, now_ms(), hours)
    return json_response(figures.as_dict())


async def get_mints(request: web.Request) -> web.Response:
    node = await require_admin(request)
    return json_response({"mints": await mints_view(node)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/api/keys", get_keys)
    app.router.add_get(r"/admin/api/keys/{key_id:\d+}", get_key)
    app.router.add_get("/admin/api/requests", get_requests)
    app.router.add_get("/admin/api/overview", get_overview)
    app.router.add_get("/admin/api/mints", get_mints)
