"""The operator's API for scripts (``/admin/api/*``): books, audit, withdrawals and key limits.

Authenticated by an admin token (``routstr admin-token create``), sent as ``Authorization: Bearer
rta-…``; only its HMAC is stored (``routstr.operator.tokens``). The dashboard and its sessions come on
top of the same operations (``routstr.operator``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from routstr.api.responses import json_response
from routstr.billing.body import read_json_body
from routstr.core.errors import AuthenticationFailed, InvalidRequest, NotFound
from routstr.limits import Limits
from routstr.node import NODE, Node
from routstr.operator.ids import parse_id
from routstr.operator.limits import set_key_limits
from routstr.operator.tokens import TOKEN_PREFIX, token_is_live
from routstr.operator.withdraw import UNITS, as_token, over_lightning
from routstr.storage.books import books
from routstr.wallet.audit import audit
from routstr.wallet.mints import canonical_mint_url

MAX_LIMIT = 2**31 - 1  # a rate limit past this is no limit; bounded so it stays a plain int everywhere


def path_id(request: web.Request, name: str, what: str) -> int:
    """The id in the URL's ``{name}``, or 404: no row has an id that is not one."""
    raw = request.match_info[name]
    value = parse_id(raw)
    if value is None:
        raise NotFound(f"No {what} with id {raw[:40]!r}")
    return value


async def require_admin(request: web.Request) -> Node:
    """The node, if the request carries a live admin token; else 401 in the error envelope."""
    node = request.app[NODE]
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        raise AuthenticationFailed("Admin API: send Authorization: Bearer rta-… (routstr admin-token create)")
    async with node.db.read() as conn:
        ok = await token_is_live(conn, node.auth.secret, token)
    if not ok:
        raise AuthenticationFailed("Admin API: unknown or revoked token")
    return node


async def get_books(request: web.Request) -> web.Response:
    node = await require_admin(request)
    async with node.db.read() as conn:
        return json_response({"books": [b.as_dict() for b in await books(conn)]})


async def get_audit(request: web.Request) -> web.Response:
    """The same checks as ``routstr audit``; 200 with ``ok: false`` and the problems if any fail."""
    node = await require_admin(request)
    offline = request.query.get("offline") in ("1", "true")
    report = await audit(node.db, node.mints, check_mints=not offline)
    return json_response(
        {
            "ok": report.ok,
            "problems": report.problems,
            "proofs_checked": report.proofs_checked,
            "books": report.books,
        }
    )


async def post_withdraw(request: web.Request) -> web.Response:
    """``{amount?, mint?, unit?, to?}``: earnings as a token, or over Lightning with ``to``."""
    node = await require_admin(request)
    body: dict[str, Any] = {}
    if request.can_read_body:
        _, body = await read_json_body(request, node.settings.max_body_bytes)
    amount = body.get("amount")
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0):
        raise InvalidRequest("'amount' must be a positive whole number", details={"param": "amount"})
    mint = canonical_mint_url(str(body["mint"])) if body.get("mint") else node.mints.primary
    if not node.mints.is_trusted(mint):
        raise InvalidRequest(f"{mint} is not one of this node's mints", details={"param": "mint"})
    to = body.get("to")
    if isinstance(to, str) and to.strip():
        paid = await over_lightning(node.db, node.payouts, mint, to.strip(), amount)
        return json_response(paid, status=200 if paid["state"] == "paid" else 202)
    unit = str(body.get("unit", "sat"))
    if unit not in UNITS:
        raise InvalidRequest("'unit' must be sat or msat", details={"param": "unit"})
    return json_response(await as_token(node.db, node.mints, mint, unit, amount))


def _limit_field(body: dict[str, Any], name: str, default: int) -> int:
    v = body.get(name, default)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_LIMIT:
        raise InvalidRequest(
            f"'{name}' must be a whole number up to {MAX_LIMIT}, 0 for no limit", details={"param": name}
        )
    return v


async def put_key_limits(request: web.Request) -> web.Response:
    """``{requests_per_minute, tokens_per_hour, concurrent}`` for one key (0: no limit); the whole
    fleet applies it within 30 s, this process at once. DELETE goes back to the defaults."""
    node = await require_admin(request)
    key_id = path_id(request, "key_id", "key")
    default = node.pipeline.limits.default
    limits = None
    if request.method == "PUT":
        _, body = await read_json_body(request, node.settings.max_body_bytes)
        limits = Limits(
            _limit_field(body, "requests_per_minute", default.requests_per_minute),
            _limit_field(body, "tokens_per_hour", default.tokens_per_hour),
            _limit_field(body, "concurrent", default.concurrent),
        )
    current = await set_key_limits(node, key_id, limits)
    return json_response(
        {
            "key_id": key_id,
            "requests_per_minute": current.requests_per_minute,
            "tokens_per_hour": current.tokens_per_hour,
            "concurrent": current.concurrent,
            "override": limits is not None,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_put(r"/admin/api/keys/{key_id:\d+}/limits", put_key_limits)
    app.router.add_delete(r"/admin/api/keys/{key_id:\d+}/limits", put_key_limits)
    app.router.add_get("/admin/api/books", get_books)
    app.router.add_get("/admin/api/audit", get_audit)
    app.router.add_post("/admin/api/withdraw", post_withdraw)
