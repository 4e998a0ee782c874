"""Who may steer the node, over the admin API: its tokens (create, list, revoke) and the dashboard
password. The same powers as the dashboard's settings page and ``routstr admin-token``
(``routstr.operator.tokens`` and ``.password``)."""

from __future__ import annotations

from aiohttp import web

from routstr.api.admin import path_id, require_admin
from routstr.api.responses import json_response
from routstr.billing.body import read_json_body
from routstr.core.errors import Forbidden, InvalidRequest, NotFound
from routstr.core.passwords import password_problem
from routstr.operator.password import change_password, check_password, password_is_set
from routstr.operator.tokens import create_admin_token, token_name, token_rows
from routstr.storage import admin_store


async def get_tokens(request: web.Request) -> web.Response:
    node = await require_admin(request)
    async with node.db.read() as conn:
        return json_response({"tokens": token_rows(await admin_store.list_tokens(conn))})


async def post_token(request: web.Request) -> web.Response:
    """``{name}`` -> the new token, shown this once (only its HMAC is kept)."""
    node = await require_admin(request)
    _, body = await read_json_body(request, node.settings.max_body_bytes)
    name = token_name(body.get("name"))
    async with node.db.write() as conn:
        token_id, token = await create_admin_token(conn, node.auth.secret, name)
    return json_response({"id": token_id, "name": name, "token": token}, status=201)


async def delete_token(request: web.Request) -> web.Response:
    """Revoke a token at once, for every process (each request looks its hash up)."""
    node = await require_admin(request)
    token_id = path_id(request, "token_id", "admin token")
    async with node.db.write() as conn:
        if not await admin_store.revoke(conn, token_id):
            raise NotFound(f"No live admin token with id {token_id}")
    return json_response({"id": token_id, "revoked": True})


async def put_password(request: web.Request) -> web.Response:
    """``{current, new}``: change the dashboard password (``current`` is not needed while none is
    set); every dashboard session is logged out."""
    node = await require_admin(request)
    _, body = await read_json_body(request, node.settings.max_body_bytes)
    new, current = body.get("new"), body.get("current")
    problem = password_problem(new) if isinstance(new, str) else "it must be a string"
    if problem is not None or not isinstance(new, str):
        raise InvalidRequest(f"'new': {problem}", details={"param": "new"})
    if await password_is_set(node) and not (isinstance(current, str) and await check_password(node, current)):
        raise Forbidden("'current' is not the dashboard password", details={"param": "current"})
    ended = await change_password(node, new)  # no session of ours to keep
    return json_response({"changed": True, "sessions_ended": ended})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/api/tokens", get_tokens)
    app.router.add_post("/admin/api/tokens", post_token)
    app.router.add_delete(r"/admin/api/tokens/{token_id:\d+}", delete_token)
    app.router.add_put("/admin/api/password", put_password)
