"""The settings page: the admin password, and what the node runs with (never its secrets)."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.engine import make_url

from routstr.admin.render import COOKIE_KEY, render
from routstr.admin.session import change_password, check_password
from routstr.admin.views.guard import form, page
from routstr.api.state import NODE, Node
from routstr.core.passwords import password_problem


def _facts(node: Node) -> list[tuple[str, str]]:
    s = node.settings
    db = make_url(s.database_url)
    limits = f"{s.rate_limit_requests_per_minute}/min, {s.rate_limit_tokens_per_hour:,} tokens/h"
    return [
        ("Name", s.name),
        ("Public URLs", ", ".join(u for u in (s.http_url, s.onion_url) if u) or "(none set)"),
        ("Mints", ", ".join(s.cashu_mints)),
        ("Database", f"{db.get_backend_name()} {db.host or ''} {db.database or ''}".strip()),
        ("Rate limits per key", f"{limits}, {s.rate_limit_concurrent} at once"),
        ("Shared counters", "Redis" if s.redis_url else "in this process"),
        ("Reservations expire after", f"{s.reservation_ttl_s} s"),
        ("Dashboard sessions last", f"{s.admin_session_hours:g} h after last use"),
    ]  # fmt: skip


@page
async def settings_page(request: web.Request) -> web.StreamResponse:
    return render(request, "settings.html", facts=_facts(request.app[NODE]), flash=None, flash_error=False)


@page
async def post_password(request: web.Request) -> web.StreamResponse:
    node = request.app[NODE]
    data = form(request)
    problem = password_problem(data.get("new", ""))
    if problem is None and not await check_password(node, data.get("current", "")):
        problem = "the current password is wrong"
    if problem is not None:
        return render(request, "settings.html", status=400, facts=_facts(node),
                      flash=f"Not changed: {problem}.", flash_error=True)  # fmt: skip
    ended = await change_password(node, request[COOKIE_KEY], data["new"])
    return render(request, "settings.html", facts=_facts(node), flash_error=False,
                  flash=f"Password changed; {ended} other session(s) logged out.")  # fmt: skip
