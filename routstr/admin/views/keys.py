"""Keys and requests: find a key (by id, or a pasted key or token), its history and limits; the ledger.

Never shows a key's spendable secret: the node does not have it (only its HMAC).
"""

from __future__ import annotations

from aiohttp import web

from routstr.admin.render import render
from routstr.admin.views.guard import form, page, see_other
from routstr.core.errors import ApiError
from routstr.limits import Limits
from routstr.node import NODE
from routstr.operator.keys import find_keys, key_with_ledger
from routstr.operator.limits import set_key_limits
from routstr.storage import admin_queries

PAGE = 50


def _before(request: web.Request) -> int | None:
    raw = request.query.get("before", "")
    return int(raw) if raw.isdigit() else None


@page
async def keys_page(request: web.Request) -> web.StreamResponse:
    """GET lists keys (or finds one by id); the search form POSTs, so a pasted key never lands in
    a URL (browser history, proxy logs), and it is not echoed back into the page."""
    node = request.app[NODE]
    q = (form(request).get("q", "") if request.method == "POST" else request.query.get("q", "")).strip()
    error = None
    try:
        found = await find_keys(node, q, PAGE, _before(request))
    except ApiError as e:
        found, error = [], e.message
    more = found[-1].id if len(found) == PAGE and not q else None
    shown = q if q.isdigit() else ""
    return render(request, "keys.html", title="Keys", q=shown, keys=found, error=error, more=more)


@page
async def key_page(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    key_id = int(request.match_info["key_id"])
    try:
        key = await key_with_ledger(node, key_id, 100)
    except ApiError as e:
        return render(request, "message.html", status=e.status, title="Keys", message=e.message)
    limits = node.pipeline.limits.limits_for(key_id)
    return render(request, "key.html", title=f"Key {key_id}", key=key, limits=limits,
                  flash=request.query.get("saved") and "Limits saved.")  # fmt: skip


@page
async def post_key_limits(request: web.Request) -> web.StreamResponse:
    """The same override as ``PUT /admin/api/keys/{id}/limits``; "reset" goes back to the defaults."""
    node = request.app[NODE]
    key_id = int(request.match_info["key_id"])
    data = form(request)
    limits: Limits | None = None
    if data.get("action") != "reset":
        try:
            values = [int(data.get(f, "")) for f in ("requests_per_minute", "tokens_per_hour", "concurrent")]
        except ValueError:
            values = [-1]
        if min(values) < 0:
            return render(request, "message.html", status=400, title="Limits",
                          message="Limits are whole numbers, 0 for no limit.")  # fmt: skip
        limits = Limits(*values)
    await set_key_limits(node, key_id, limits)
    return see_other(f"/admin/keys/{key_id}?saved=1")


@page
async def requests_page(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    key_raw, model = request.query.get("key_id", "").strip(), request.query.get("model", "").strip()
    key_id = int(key_raw) if key_raw.isdigit() else None
    async with node.db.read() as conn:
        found = await admin_queries.list_requests(conn, key_id, model or None, PAGE, _before(request))
    more = found[-1].id if len(found) == PAGE else None
    return render(request, "requests.html", title="Requests", rows=found, key_id=key_raw, model=model,
                  more=more)  # fmt: skip
