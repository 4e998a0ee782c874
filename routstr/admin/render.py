"""Pages from Jinja2 templates (autoescaped), with what every page needs: the CSRF token and the nav."""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any

import jinja2
from aiohttp import web

from routstr.admin.session import csrf_token
from routstr.config import DEFAULTS
from routstr.node import NODE

NAV = (
    ("/admin/", "Overview"),
    ("/admin/keys", "Keys"),
    ("/admin/requests", "Requests"),
    ("/admin/models", "Providers & models"),
    ("/admin/mints", "Mints"),
    ("/admin/withdraw", "Withdraw"),
    ("/admin/settings", "Settings"),
)
COOKIE_KEY: web.RequestKey[str] = web.RequestKey("admin_cookie", str)


def when(ms: int | None) -> str:
    """A stored time (ms since the epoch) for the eye, in UTC; empty for none."""
    if not ms:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("routstr.admin", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sats"] = lambda msat: f"{int(msat) // 1000:,}"
    env.filters["msat"] = lambda msat: f"{int(msat):,}"
    env.filters["num"] = lambda n: f"{int(n):,}"
    env.globals["when"] = when
    return env


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    cookie = request.get(COOKIE_KEY)
    node = request.app[NODE]
    html = (
        environment()
        .get_template(template)
        .render(
            nav=NAV,
            path=request.path,
            node_name=node.settings.name or DEFAULTS.name,
            csrf=csrf_token(node.auth.secret, cookie) if cookie else "",
            logged_in=cookie is not None,
            **context,
        )
    )
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
            "Referrer-Policy": "same-origin",
        },
    )
