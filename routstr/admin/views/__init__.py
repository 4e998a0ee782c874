"""The dashboard's routes: one module per page family, all behind ``guard.page``."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from routstr.admin.views import auth, catalogue, keys, mints, overview, settings, withdraw

STATIC = Path(__file__).resolve().parent.parent / "static"


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/admin/")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin", _home)
    app.router.add_get("/admin/login", auth.login_form)
    app.router.add_post("/admin/login", auth.login)
    app.router.add_post("/admin/logout", auth.logout)
    app.router.add_get("/admin/", overview.overview_page)
    app.router.add_get("/admin/keys", keys.keys_page)
    app.router.add_post("/admin/keys", keys.keys_page)
    app.router.add_get(r"/admin/keys/{key_id:\d+}", keys.key_page)
    app.router.add_post(r"/admin/keys/{key_id:\d+}/limits", keys.post_key_limits)
    app.router.add_get("/admin/requests", keys.requests_page)
    app.router.add_get("/admin/models", catalogue.models_page)
    app.router.add_post("/admin/providers", catalogue.post_provider)
    app.router.add_get("/admin/models/edit", catalogue.model_page)
    app.router.add_post("/admin/models/edit", catalogue.post_model)
    app.router.add_get("/admin/mints", mints.mints_page)
    app.router.add_get("/admin/settings", settings.settings_page)
    app.router.add_post("/admin/settings/password", settings.post_password)
    app.router.add_post("/admin/settings/tokens", settings.post_token)
    app.router.add_get("/admin/withdraw", withdraw.withdraw_page)
    app.router.add_post("/admin/withdraw", withdraw.post_withdraw)
    app.router.add_static("/admin/static", STATIC, append_version=False)
