"""The operator's API for scripts (``/admin/api/*``): books, audit and withdrawals.

Authenticated by an admin token (``routstr admin-token create``), sent as ``Authorization: Bearer
rta-…``; only its HMAC is stored. The dashboard and its sessions come on top of this.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.api.info import json_response
from routstr.api.state import NODE, Node
from routstr.billing.body import read_json_body
from routstr.core.errors import AuthenticationFailed, InvalidRequest, NotFound
from routstr.limits import LimitPolicy, Limits
from routstr.storage import admin_store, limit_overrides
from routstr.storage.books import books
from routstr.wallet.audit import audit
from routstr.wallet.mints import canonical_mint_url
from routstr.wallet.withdraw import withdraw
from routstr.wallet.withdraw_lightning import withdraw_lightning

TOKEN_PREFIX = "rta-"
MAX_ID = 2**63 - 1  # row ids are BIGINT: a larger number overflows the driver, not a lookup
MAX_LIMIT = 2**31 - 1  # a rate limit past this is no limit; bounded so it stays a plain int everywhere


def parse_id(raw: str) -> int | None:
    """A row id: ASCII digits, 1 to ``MAX_ID``; None for anything else (``str.isdigit`` also takes
    other scripts' digits and superscripts, which ``int`` reads differently or not at all)."""
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def path_id(request: web.Request, name: str, what: str) -> int:
    """The id in the URL's ``{name}``, or 404: no row has an id that is not one."""
    raw = request.match_info[name]
    value = parse_id(raw)
    if value is None:
        raise NotFound(f"No {what} with id {raw[:40]!r}")
    return value


def new_admin_token() -> str:
    return TOKEN_PREFIX + secrets.token_hex(24)


def admin_token_hash(secret: bytes, token: str) -> str:
    return hmac.new(secret, b"admin:" + token.encode(), hashlib.sha256).hexdigest()


async def create_admin_token(conn: AsyncConnection, secret: bytes, name: str) -> tuple[int, str]:
    """A new token and its id; only its HMAC is stored, so this is the one time it is seen."""
    token = new_admin_token()
    return await admin_store.add_token(conn, admin_token_hash(secret, token), name), token


async def require_admin(request: web.Request) -> Node:
    """The node, if the request carries a live admin token; else 401 in the error envelope."""
    node = request.app[NODE]
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        raise AuthenticationFailed("Admin API: send Authorization: Bearer rta-… (routstr admin-token create)")
    async with node.db.read() as conn:
        ok = await admin_store.token_is_valid(conn, admin_token_hash(node.auth.secret, token))
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
        p = await withdraw_lightning(node.db, node.payouts, mint, to.strip(), amount)
        out: dict[str, Any] = {
            "state": p.state,
            "amount_sats": p.amount,
            "fee_sats": p.fee,
            "preimage": p.preimage,
        }
        return json_response(out, status=200 if p.state == "paid" else 202)
    unit = str(body.get("unit", "sat"))
    if unit not in ("sat", "msat"):
        raise InvalidRequest("'unit' must be sat or msat", details={"param": "unit"})
    w = await withdraw(node.db, node.mints, mint, unit, amount)
    return json_response({"token": w.token, "amount": w.amount, "fee": w.fee, "unit": unit})


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


async def set_key_limits(node: Node, key_id: int, limits: Limits | None) -> Limits:
    """Store one key's limits (None: back to the defaults) and apply them in this process at once;
    the limits now in force for the key (the API's and the dashboard's)."""
    overrides = await limit_overrides.set_override(node.db, key_id, limits)
    default = node.pipeline.limits.default
    node.pipeline.limits = LimitPolicy(default, overrides)
    return overrides.get(key_id, default)


def add_routes(app: web.Application) -> None:
    app.router.add_put(r"/admin/api/keys/{key_id:\d+}/limits", put_key_limits)
    app.router.add_delete(r"/admin/api/keys/{key_id:\d+}/limits", put_key_limits)
    app.router.add_get("/admin/api/books", get_books)
    app.router.add_get("/admin/api/audit", get_audit)
    app.router.add_post("/admin/api/withdraw", post_withdraw)
