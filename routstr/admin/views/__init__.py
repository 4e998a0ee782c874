"""The dashboard's routes: one module per page family, all behind ``guard.page``."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from routstr.admin.views import auth, settings, withdraw

STATIC = Path(__file__).resolve().parent.parent / "static"


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/admin/")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin", _home)
    app.router.add_get("/admin/login", auth.login_form)
    app.router.add_post("/admin/login", auth.login)
    app.router.add_post("/admin/logout", auth.logout)
    app.router.add_get("/admin/settings", settings.settings_page)
    app.router.add_post("/admin/settings/password", settings.post_password)
    app.router.add_get("/admin/withdraw", withdraw.withdraw_page)
    app.router.add_post("/admin/withdraw", withdraw.post_withdraw)
    app.router.add_static("/admin/static", STATIC, append_version=False)
