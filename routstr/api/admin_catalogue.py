"""The operator's providers and models over HTTP (``/admin/api/providers``, ``/admin/api/models``).

Providers added here join those of the environment and ``PROVIDERS_FILE`` (which are read-only here,
shown with ``source: "file"``); model settings (a price in the pricing file's terms, enabled, aliases)
override ``PRICING_FILE``. The operations are ``routstr.operator.providers`` and ``.models``, the
dashboard's too; these routes read the body and answer JSON. No answer ever holds a provider key.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from routstr.api.admin import require_admin
from routstr.api.responses import json_response
from routstr.billing.body import read_json_body
from routstr.core.errors import InvalidRequest, NotFound
from routstr.node import MANAGED, Node
from routstr.operator import forms, models, providers


async def _body(request: web.Request, node: Node) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    _, body = await read_json_body(request, node.settings.max_body_bytes)
    return body


async def get_providers(request: web.Request) -> web.Response:
    node = await require_admin(request)
    return json_response({"providers": await providers.provider_views(node, request.app[MANAGED])})


async def post_provider(request: web.Request) -> web.Response:
    node = await require_admin(request)
    view = await providers.add_provider(node, request.app[MANAGED], await _body(request, node))
    return json_response(view, status=201)


async def put_provider(request: web.Request) -> web.Response:
    node = await require_admin(request)
    raw_id = request.match_info["provider_id"]
    body = await _body(request, node)
    return json_response(await providers.edit_provider(node, request.app[MANAGED], raw_id, body))


async def delete_provider(request: web.Request) -> web.Response:
    node = await require_admin(request)
    await providers.remove_provider(node, request.app[MANAGED], request.match_info["provider_id"])
    return json_response({"deleted": True})


async def get_models(request: web.Request) -> web.Response:
    node = await require_admin(request)
    managed = request.app[MANAGED]
    listed = set(node.catalogue.listed_ids())
    views = [models.model_view(node, managed, m, listed) for m in models.model_ids(node, managed)]
    return json_response({"models": views})


async def put_model(request: web.Request) -> web.Response:
    node = await require_admin(request)
    model = request.match_info["model"]
    body = await _body(request, node)
    return json_response(await models.change_model(node, request.app[MANAGED], model, body))


async def delete_model(request: web.Request) -> web.Response:
    node = await require_admin(request)
    model = request.match_info["model"]
    # a model id with a control character has no stored settings (and is not one to look up)
    if not forms.clean(model) or not await models.reset_model(node, request.app[MANAGED], model):
        raise NotFound(f"Model {model!r} has no stored settings")
    return json_response({"deleted": True})


async def post_model_test(request: web.Request) -> web.Response:
    node = await require_admin(request)
    body = await _body(request, node)
    provider = body.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise InvalidRequest("'provider' must be a provider's name", details={"param": "provider"})
    model = request.match_info["model"]
    return json_response(await models.test_model(node, request.app[MANAGED], model, provider))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/api/providers", get_providers)
    app.router.add_post("/admin/api/providers", post_provider)
    app.router.add_put("/admin/api/providers/{provider_id}", put_provider)
    app.router.add_delete("/admin/api/providers/{provider_id}", delete_provider)
    app.router.add_get("/admin/api/models", get_models)
    app.router.add_post("/admin/api/models/{model:.+}/test", post_model_test)
    app.router.add_put("/admin/api/models/{model:.+}", put_model)
    app.router.add_delete("/admin/api/models/{model:.+}", delete_model)
