"""The one gate in front of every dashboard page: a live session, and a valid CSRF token on posts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import quote

from aiohttp import web

from routstr.admin.render import COOKIE_KEY, render
from routstr.admin.session import csrf_ok, current_cookie

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STALE = "This form is stale or came from another site. Reload the page and try again."
FORM: web.RequestKey[dict[str, str]] = web.RequestKey("admin_form", dict)


def page(handler: Handler) -> Handler:
    """Logged-in operators only (others go to the login page); a POST must carry the CSRF token."""

    @wraps(handler)
    async def gated(request: web.Request) -> web.StreamResponse:
        cookie = await current_cookie(request)
        if cookie is None:
            if request.method == "GET":
                raise web.HTTPSeeOther(f"/admin/login?next={quote(request.path_qs, safe='')}")
            raise web.HTTPSeeOther("/admin/login")
        request[COOKIE_KEY] = cookie
        if request.method == "POST":
            form = {k: str(v) for k, v in (await request.post()).items()}
            if not csrf_ok(request, cookie, form.get("csrf")):
                return render(request, "message.html", status=403, title="Refused", message=STALE)
            request[FORM] = form
        return await handler(request)

    return gated


def form(request: web.Request) -> dict[str, str]:
    return request[FORM]


def see_other(location: str) -> web.Response:
    """A redirect after a form post (returned, so cookies set on it go out with it)."""
    return web.Response(status=303, headers={"Location": location})
