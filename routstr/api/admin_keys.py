"""The operator's view of keys, requests, figures and mints over HTTP (``/admin/api/keys``,
``/requests``, ``/overview``, ``/mints``), read-only.

A key is found by its id, or by pasting the key itself or a Cashu token (``routstr.operator.keys``:
only the hash of what is pasted is looked up, and no answer holds a key or its hash). The queries are
in ``storage/admin_queries.py``; the dashboard's pages call the same operations.
"""

from __future__ import annotations

from aiohttp import web

from routstr.api.admin import path_id, require_admin
from routstr.api.responses import json_response
from routstr.core.errors import InvalidRequest
from routstr.operator.forms import clean
from routstr.operator.ids import MAX_ID
from routstr.operator.keys import find_keys, key_with_ledger
from routstr.operator.mints import mints_view
from routstr.storage import admin_queries as queries
from routstr.storage.accounts import now_ms

MAX_PAGE = 500


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
