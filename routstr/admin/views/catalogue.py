"""Providers and models: add, edit and switch providers, set a model's price, aliases and sale, test it.

Every change goes through the same functions as ``/admin/api/providers`` and ``/admin/api/models``
(``routstr.operator.providers`` and ``.models``): the same checks, stored in the database, applied at
once here and by the rest of a fleet within ``CATALOGUE_SYNC_SECONDS``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from routstr.admin.render import render
from routstr.admin.views.guard import form, page, see_other
from routstr.core.errors import ApiError
from routstr.node import MANAGED, NODE
from routstr.operator import models, providers

CURRENCY_KEYS = {
    "sat": ("prompt_sats_per_mtok", "completion_sats_per_mtok", "request_sats"),
    "usd": ("prompt_usd_per_mtok", "completion_usd_per_mtok", "request_usd"),
}


def _csv(raw: str) -> list[str] | None:
    items = [x.strip() for x in raw.split(",") if x.strip()]
    return items or None


async def _models_page(request: web.Request, status: int = 200, flash: str | None = None,
                       error: str | None = None) -> web.Response:  # fmt: skip
    node, managed = request.app[NODE], request.app[MANAGED]
    model_views = [models.model_view(node, managed, m) for m in models.model_ids(node, managed)]
    provider_views = await providers.provider_views(node, managed)
    return render(request, "models.html", status=status, title="Providers & models", models=model_views,
                  providers=provider_views, flash=flash, error=error)  # fmt: skip


@page
async def models_page(request: web.Request) -> web.StreamResponse:
    return await _models_page(request, flash=request.query.get("done"))


@page
async def post_provider(request: web.Request) -> web.StreamResponse:
    """Add or edit a provider, or switch one on or off, or remove one (``action``)."""
    node, managed = request.app[NODE], request.app[MANAGED]
    data = form(request)
    action = data.get("action", "add")
    try:
        if action in ("add", "edit"):
            body: dict[str, Any] = {
                "name": data.get("name", "").strip(),
                "base_url": data.get("base_url", "").strip(),
                "kind": data.get("kind", "openai"),
                "fee": data.get("fee", "0").strip() or "0",
                "models": _csv(data.get("models", "")),
            }
            key = data.get("api_key", "")
            if data.get("remove_key") == "on":
                body["api_key"] = None
            elif key or action == "add":  # an edit with the field left empty keeps the stored key
                body["api_key"] = key or None
            if action == "add":
                view = await providers.add_provider(node, managed, body)
                done = f"Provider {view['name']} added."
            else:
                view = await providers.edit_provider(node, managed, data.get("id", ""), body)
                done = f"Provider {view['name']} saved."
        elif action in ("enable", "disable"):
            await providers.edit_provider(node, managed, data.get("id", ""), {"enabled": action == "enable"})
            done = f"Provider {action}d."
        elif action == "remove":
            await providers.remove_provider(node, managed, data.get("id", ""))
            done = "Provider removed."
        else:
            return await _models_page(request, 400, error="Unknown action.")
    except ApiError as e:
        return await _models_page(request, e.status, error=e.message)
    return see_other(f"/admin/models?done={quote(done)}")


@page
async def model_page(request: web.Request) -> web.StreamResponse:
    node, managed = request.app[NODE], request.app[MANAGED]
    model = request.query.get("model", "")
    if not model:
        raise web.HTTPSeeOther("/admin/models")
    return render(request, "model.html", title=model, m=models.model_view(node, managed, model),
                  flash=request.query.get("done"), error=None, test=None)  # fmt: skip


def _price_body(data: dict[str, str]) -> dict[str, Any] | None:
    """The pricing-file table the form describes (None: the file's price applies again)."""
    if data.get("price_mode") == "file":
        return None
    keys = CURRENCY_KEYS.get(data.get("currency", "sat"), CURRENCY_KEYS["sat"])
    fields = (data.get("prompt", ""), data.get("completion", ""), data.get("request", ""))
    return {k: v.strip() for k, v in zip(keys, fields, strict=True) if v.strip()} or {keys[0]: "0"}


@page
async def post_model(request: web.Request) -> web.StreamResponse:
    """Save the model's price, sale and aliases; or drop its settings (``reset``); or test it."""
    node, managed = request.app[NODE], request.app[MANAGED]
    data = form(request)
    model, action = data.get("model", ""), data.get("action", "save")
    target = f"/admin/models/edit?model={quote(model, safe='')}"
    try:
        if action == "test":
            result = await models.test_model(node, managed, model)
            return render(request, "model.html", title=model, m=models.model_view(node, managed, model),
                          flash=None, error=None, test=result)  # fmt: skip
        if action == "reset":
            await models.reset_model(node, managed, model)
            return see_other(target + "&done=" + quote("Back to the configured price and aliases."))
        body = {
            "price": _price_body(data),
            "enabled": data.get("enabled") == "on",
            "aliases": _csv(data.get("aliases", "")),
        }
        await models.change_model(node, managed, model, body)
    except ApiError as e:
        return render(request, "model.html", status=e.status, title=model, test=None, flash=None,
                      m=models.model_view(node, managed, model), error=e.message)  # fmt: skip
    return see_other(target + "&done=" + quote("Saved."))
