"""Logging in and out of the dashboard."""

from __future__ import annotations

from aiohttp import web

from routstr.admin.render import render
from routstr.admin.session import (
    current_cookie,
    end_session,
    login_allowed,
    login_succeeded,
    same_origin,
    start_session,
)
from routstr.admin.views.guard import page, see_other
from routstr.node import NODE
from routstr.operator.password import check_password, password_is_set


def _next(request: web.Request, raw: str | None) -> str:
    """Only a path on this dashboard (never an absolute URL elsewhere)."""
    return raw if raw and raw.startswith("/admin") and not raw.startswith("//") else "/admin/"


async def login_form(request: web.Request) -> web.StreamResponse:
    if await current_cookie(request) is not None:
        raise web.HTTPSeeOther(_next(request, request.query.get("next")))
    configured = await password_is_set(request.app[NODE])
    return render(request, "login.html", error=None, configured=configured,
                  next=_next(request, request.query.get("next")))  # fmt: skip


async def login(request: web.Request) -> web.StreamResponse:
    try:
        data = await request.post()
    except ValueError:  # a broken multipart body, or bytes that are not UTF-8: no password in it
        return render(request, "login.html", status=400, error="The form could not be read.",
                      configured=True, next="/admin/")  # fmt: skip
    nxt = _next(request, str(data.get("next", "")))
    node = request.app[NODE]
    if not same_origin(request):
        return render(request, "login.html", status=403, error="Refused: the form came from another site.",
                      configured=True, next=nxt)  # fmt: skip
    wait = await login_allowed(request)
    if wait is not None:
        resp = render(request, "login.html", status=429, configured=True, next=nxt,
                      error=f"Too many attempts. Try again in {wait} seconds.")  # fmt: skip
        resp.headers["Retry-After"] = str(wait)
        return resp
    if not await check_password(node, str(data.get("password", ""))):
        return render(request, "login.html", status=401, error="Wrong password.",
                      configured=await password_is_set(node), next=nxt)  # fmt: skip
    await login_succeeded(request)
    resp = see_other(nxt)
    await start_session(request, resp)
    return resp


@page
async def logout(request: web.Request) -> web.StreamResponse:
    resp = see_other("/admin/login")
    await end_session(request, resp)
    return resp
