"""The settings page: the admin password, the admin API's tokens, and what the node runs with
(never its secrets)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.engine import make_url

from routstr.admin.render import COOKIE_KEY, render
from routstr.admin.session import change_password
from routstr.admin.views.guard import form, page
from routstr.billing.leases import RENEWALS_PER_TTL
from routstr.core.errors import ApiError
from routstr.core.passwords import password_problem
from routstr.node import NODE, Node
from routstr.operator.password import check_password
from routstr.operator.tokens import create_admin_token, token_name, token_rows
from routstr.storage import admin_store


def _facts(node: Node) -> list[tuple[str, str]]:
    s = node.settings
    db = make_url(s.database_url)
    lease_renewal_s = round(s.reservation_ttl_s / RENEWALS_PER_TTL, 1)
    limits = f"{s.rate_limit_requests_per_minute}/min, {s.rate_limit_tokens_per_hour:,} tokens/h"
    return [
        ("Name", s.name),
        ("Public URLs", ", ".join(u for u in (s.http_url, s.onion_url) if u) or "(none set)"),
        ("Mints", ", ".join(s.cashu_mints)),
        ("Database", f"{db.get_backend_name()} {db.host or ''} {db.database or ''}".strip()),
        ("Rate limits per key", f"{limits}, {s.rate_limit_concurrent} at once"),
        ("Shared counters", "Redis" if s.redis_url else "in this process"),
        ("Reservation lease", f"{s.reservation_ttl_s} s, renewed every {lease_renewal_s:g} s while its "
         "request runs; a crashed request's is given back after it"),
        ("Dashboard sessions last", f"{s.admin_session_hours:g} h after last use"),
    ]  # fmt: skip


async def _settings(
    request: web.Request, flash: str | None = None, error: bool = False, status: int = 200, **extra: object
) -> web.Response:
    node = request.app[NODE]
    async with node.db.read() as conn:
        tokens = token_rows(await admin_store.list_tokens(conn))
    return render(request, "settings.html", status=status, facts=_facts(node), tokens=tokens,
                  flash=flash, flash_error=error, **extra)  # fmt: skip


@page
async def settings_page(request: web.Request) -> web.StreamResponse:
    return await _settings(request)


@page
async def post_password(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    data = form(request)
    problem = password_problem(data.get("new", ""))
    if problem is None and not await check_password(node, data.get("current", "")):
        problem = "the current password is wrong"
    if problem is not None:
        return await _settings(request, f"Not changed: {problem}.", error=True, status=400)
    ended = await change_password(node, request[COOKIE_KEY], data["new"])
    return await _settings(request, f"Password changed; {ended} other session(s) logged out.")


@page
async def post_token(request: web.Request) -> web.StreamResponse:
    """Create an admin API token (shown on this answer only) or revoke one (``action``)."""
    node = request.app[NODE]
    data = form(request)
    if data.get("action") == "revoke":
        raw = data.get("id", "")
        async with node.db.write() as conn:
            revoked = raw.isdigit() and await admin_store.revoke(conn, int(raw))
        return await _settings(request, "Token revoked." if revoked else "No such live token.", not revoked)
    try:
        name = token_name(data.get("name", ""))
    except ApiError as e:
        return await _settings(request, f"Not created: {e.message}.", error=True, status=400)
    async with node.db.write() as conn:
        token_id, token = await create_admin_token(conn, node.auth.secret, name)
    return await _settings(request, f"Token {token_id} created; copy it now, it is not shown again.",
                           new_token=token)  # fmt: skip
