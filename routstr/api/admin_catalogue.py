"""The operator's providers and models (``/admin/api/providers``, ``/admin/api/models``).

Providers added here join those of the environment and ``PROVIDERS_FILE`` (which are read-only here,
shown with ``source: "file"``); model settings (a price in the pricing file's terms, enabled, aliases)
override ``PRICING_FILE``. A change is stored (keys sealed), applied at once in this process and
within CATALOGUE_SYNC_SECONDS in every other one (``upstream/managed.py``). No answer ever holds a
provider key: only whether one is set and its last four characters.

The operations are plain functions of the node, so the dashboard's pages call the same ones.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.api import catalogue_forms as forms
from routstr.api.admin import parse_id, require_admin
from routstr.api.info import json_response
from routstr.api.state import Node
from routstr.billing.body import read_json_body
from routstr.core.errors import InvalidRequest, NotFound
from routstr.core.sealed import SealError, seal, unseal
from routstr.storage import provider_store
from routstr.storage.provider_store import KEY_PURPOSE, ModelSettingRow, ProviderRow
from routstr.upstream.aliases import is_pattern
from routstr.upstream.managed import ManagedCatalogue, db_spec
from routstr.upstream.probe import ProbeResult, probe
from routstr.upstream.providers import Provider
from routstr.upstream.spec import ProviderSpec

MANAGED: web.AppKey[ManagedCatalogue] = web.AppKey("managed_catalogue", ManagedCatalogue)


def key_hint(key: str) -> str | None:
    """The last four characters of a key, shown so an operator can tell keys apart (none for a key
    too short to spare four)."""
    return key[-4:] if len(key) >= 12 else None


def _live(node: Node, name: str) -> Provider | None:
    return next((p for p in node.providers if p.spec.name == name), None)


def _runtime(p: Provider | None) -> dict[str, Any]:
    return {
        "in_rotation": p is not None,
        "answered": None if p is None else p.answered,
        "cooling_down": False if p is None else not p.breaker.available(),
        "listed_models": None if p is None else len(p.listed),
    }


def file_provider_fields(spec: ProviderSpec) -> dict[str, Any]:
    """A provider of the environment or PROVIDERS_FILE, as shown (its key only hinted at)."""
    return {
        "id": None,
        "source": "file",
        "name": spec.name,
        "base_url": spec.base_url,
        "kind": spec.kind,
        "fee": str(spec.fee),
        "models": sorted(spec.models) if spec.models is not None else None,
        "enabled": True,
        "api_key_set": bool(spec.api_key),
        "api_key_last4": key_hint(spec.api_key),
    }


def db_provider_fields(row: ProviderRow, secret: bytes) -> dict[str, Any]:
    """A stored provider, as shown (its key only hinted at)."""
    hint, readable = None, True
    if row.api_key_sealed:
        try:
            hint = key_hint(unseal(secret, KEY_PURPOSE, row.api_key_sealed))
        except SealError:
            readable = False
    return {
        "id": row.id,
        "source": "database",
        "name": row.name,
        "base_url": row.base_url,
        "kind": row.kind,
        "fee": str(row.fee),
        "models": list(row.models) if row.models is not None else None,
        "enabled": row.enabled,
        "api_key_set": row.api_key_sealed is not None,
        "api_key_last4": hint,
        "api_key_readable": readable,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def file_provider_view(node: Node, spec: ProviderSpec) -> dict[str, Any]:
    return {**file_provider_fields(spec), **_runtime(_live(node, spec.name))}


def db_provider_view(node: Node, row: ProviderRow) -> dict[str, Any]:
    live = _live(node, row.name) if row.enabled else None
    return {**db_provider_fields(row, node.auth.secret), **_runtime(live)}


async def provider_views(node: Node, managed: ManagedCatalogue) -> list[dict[str, Any]]:
    async with node.db.read() as conn:
        rows = await provider_store.list_providers(conn)
    return [file_provider_view(node, s) for s in managed.file_specs] + [
        db_provider_view(node, r) for r in rows
    ]


def _stored_fields(secret: bytes, fields: dict[str, Any]) -> dict[str, Any]:
    """The checked fields as stored: the key sealed with the node's secret (None: no key)."""
    out = dict(fields)
    if "api_key" in out:
        key = out.pop("api_key")
        out["api_key_sealed"] = seal(secret, KEY_PURPOSE, key) if key else None
    return out


def _name_taken(name: str, where: str = "exists already") -> InvalidRequest:
    return InvalidRequest(
        f"A provider named {name!r} {where}", details={"param": "name"}, code="provider_name_taken"
    )


def _check_name_free(file_names: Collection[str], name: str) -> None:
    if name in file_names:
        raise _name_taken(name, "is configured in the environment or PROVIDERS_FILE")


async def insert_provider(
    conn: AsyncConnection, secret: bytes, file_names: Collection[str], body: dict[str, Any]
) -> ProviderRow:
    """Check a new provider's body and store it (the admin API's and ``routstr providers add``)."""
    fields = _stored_fields(secret, forms.provider_changes(body, new=True))
    _check_name_free(file_names, fields["name"])
    new_id = await provider_store.add_provider(conn, **fields)
    row = None if new_id is None else await provider_store.provider_by_id(conn, new_id)
    if row is None:
        raise _name_taken(fields["name"])
    return row


async def add_provider(node: Node, managed: ManagedCatalogue, body: dict[str, Any]) -> dict[str, Any]:
    async with node.db.write() as conn:
        row = await insert_provider(conn, node.auth.secret, managed.file_names, body)
    await managed.reload()
    return db_provider_view(node, row)


def _provider_id(managed: ManagedCatalogue, raw: str) -> int:
    if raw in managed.file_names:
        raise InvalidRequest(
            f"Provider {raw!r} comes from the environment or PROVIDERS_FILE: change it there",
            code="provider_read_only",
        )
    provider_id = parse_id(raw)
    if provider_id is None:
        raise NotFound(f"No provider with id {raw[:40]!r}")
    return provider_id


async def edit_provider(
    node: Node, managed: ManagedCatalogue, raw_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    provider_id = _provider_id(managed, raw_id)
    fields = _stored_fields(node.auth.secret, forms.provider_changes(body, new=False))
    if "name" in fields:
        _check_name_free(managed.file_names, fields["name"])
    async with node.db.write() as conn:
        other = await provider_store.provider_by_name(conn, fields["name"]) if "name" in fields else None
        if other is not None and other.id != provider_id:
            raise _name_taken(fields["name"])
        if not await provider_store.update_provider(conn, provider_id, fields):
            raise NotFound(f"No provider with id {provider_id}")
        row = await provider_store.provider_by_id(conn, provider_id)
    assert row is not None
    await managed.reload()
    return db_provider_view(node, row)


async def remove_provider(node: Node, managed: ManagedCatalogue, raw_id: str) -> None:
    provider_id = _provider_id(managed, raw_id)
    async with node.db.write() as conn:
        if not await provider_store.delete_provider(conn, provider_id):
            raise NotFound(f"No provider with id {provider_id}")
    await managed.reload()


def _serving(node: Node, managed: ManagedCatalogue, model: str) -> list[tuple[Provider, str]]:
    """Providers in rotation that serve ``model`` (through its alias targets), cheapest first,
    whether or not they are cooling down."""
    targets = managed.state.targets(model)
    offers = [(p, t) for t in targets for p in node.providers if p.serves(t)]
    return sorted(offers, key=lambda offer: offer[0].spec.fee)


def model_view(
    node: Node, managed: ManagedCatalogue, model: str, listed: set[str] | None = None
) -> dict[str, Any]:
    """One model as the operator sees it (``listed``: the ids of /v1/models, if already at hand). A
    wildcard alias shows its target's price: its requests are priced as the target."""
    state = managed.state
    stored: ModelSettingRow | None = managed.settings.get(model)
    priced_as = state.patterns.get(model, model)
    spec = state.prices.spec_for(priced_as)
    if priced_as in state.overridden:
        source = "override"
    elif priced_as in managed.file_prices.models:
        source = "file"
    else:
        source = "default"
    rate = node.catalogue.btc_usd_now() if spec.currency == "usd" else None
    msat = None
    if spec.currency == "sat" or rate is not None:
        p = spec.resolve(rate)
        msat = {
            "prompt_per_mtok": p.prompt_msat_per_mtok,
            "completion_per_mtok": p.completion_msat_per_mtok,
            "request": p.request_msat,
            "cached_prompt_per_mtok": p.cached_prompt_msat_per_mtok,
            "cache_write_per_mtok": p.cache_write_msat_per_mtok,
        }
    alias_source = None
    if stored is not None and stored.aliases:
        alias_source = "database"
    elif model in managed.file_aliases and not (stored is not None and stored.aliases == ()):
        alias_source = "file"
    return {
        "id": model,
        "enabled": model not in state.disabled,
        "listed": model in (listed if listed is not None else set(node.catalogue.listed_ids())),
        "price_source": source,
        "currency": spec.currency,
        "price": spec.as_mapping(),
        "msat": msat,  # null while a USD price has no fresh BTC/USD rate
        "providers": list(dict.fromkeys(p.spec.name for p, _ in _serving(node, managed, model))),
        "aliases": list(managed.state.targets(model))
        if model in state.aliases or model in state.patterns
        else None,
        "alias_source": alias_source,
        "wildcard": is_pattern(model),
        "override": None
        if stored is None
        else {"price": stored.price, "enabled": stored.enabled, "aliases": stored.aliases},
    }


def model_ids(node: Node, managed: ManagedCatalogue) -> list[str]:
    """Every model the node knows of: the providers' lists, priced ones, aliases, stored settings."""
    state = managed.state
    return sorted(
        set(node.catalogue.models)
        | set(state.prices.models)
        | set(state.aliases)
        | set(state.patterns)
        | set(managed.file_aliases)
        | set(managed.settings)
    )


async def change_model(
    node: Node, managed: ManagedCatalogue, model: str, body: dict[str, Any]
) -> dict[str, Any]:
    changes = forms.model_changes(model, body)
    async with node.db.write() as conn:
        await provider_store.change_model_setting(conn, model, changes)
    await managed.reload()
    return model_view(node, managed, model)


async def reset_model(node: Node, managed: ManagedCatalogue, model: str) -> bool:
    """Drop the model's stored settings: the files' price and aliases apply again, and it is on sale."""
    async with node.db.write() as conn:
        found = await provider_store.delete_model_setting(conn, model)
    await managed.reload()
    return found


async def test_model(
    node: Node, managed: ManagedCatalogue, model: str, provider: str | None = None
) -> dict[str, Any]:
    """One completion of one output token at the provider that would answer (or the one named, which
    may be a stored provider that is switched off): ok, status, latency_ms, error. Not billed."""
    offers = _serving(node, managed, model)
    if provider is not None:
        offers = [(p, t) for p, t in offers if p.spec.name == provider]
    targets = managed.state.targets(model)
    if offers:
        chosen, upstream_model = offers[0]
        result = await probe(chosen.client, upstream_model, chosen.spec.api_key)
        name = chosen.spec.name
    elif provider is not None and (row := _stored(managed, provider)) is not None:
        upstream_model, name = targets[0], provider
        result = await _probe_stored(node, managed, row, upstream_model)
    else:
        raise NotFound(
            f"No provider serves {model!r}" + (f" under the name {provider!r}" if provider else ""),
            code="no_provider",
        )
    return {"model": model, "provider": name, "upstream_model": upstream_model, **result.as_dict()}


def _stored(managed: ManagedCatalogue, name: str) -> ProviderRow | None:
    return next((r for r in managed.rows if r.name == name), None)


async def _probe_stored(node: Node, managed: ManagedCatalogue, row: ProviderRow, model: str) -> ProbeResult:
    """Test a stored provider that is not in rotation, with a client of its own for the one call."""
    try:
        spec = db_spec(row, node.auth.secret)
    except SealError:
        raise InvalidRequest(f"The stored key of provider {row.name!r} does not open") from None
    provider = managed.build(spec)
    try:
        return await probe(provider.client, model, spec.api_key)
    finally:
        await provider.client.session.close()


# --- HTTP ---------------------------------------------------------------------------------------


async def _body(request: web.Request, node: Node) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    _, body = await read_json_body(request, node.settings.max_body_bytes)
    return body


async def get_providers(request: web.Request) -> web.Response:
    node = await require_admin(request)
    return json_response({"providers": await provider_views(node, request.app[MANAGED])})


async def post_provider(request: web.Request) -> web.Response:
    node = await require_admin(request)
    view = await add_provider(node, request.app[MANAGED], await _body(request, node))
    return json_response(view, status=201)


async def put_provider(request: web.Request) -> web.Response:
    node = await require_admin(request)
    raw_id = request.match_info["provider_id"]
    return json_response(await edit_provider(node, request.app[MANAGED], raw_id, await _body(request, node)))


async def delete_provider(request: web.Request) -> web.Response:
    node = await require_admin(request)
    await remove_provider(node, request.app[MANAGED], request.match_info["provider_id"])
    return json_response({"deleted": True})


async def get_models(request: web.Request) -> web.Response:
    node = await require_admin(request)
    managed = request.app[MANAGED]
    listed = set(node.catalogue.listed_ids())
    views = [model_view(node, managed, m, listed) for m in model_ids(node, managed)]
    return json_response({"models": views})


async def put_model(request: web.Request) -> web.Response:
    node = await require_admin(request)
    model = request.match_info["model"]
    return json_response(await change_model(node, request.app[MANAGED], model, await _body(request, node)))


async def delete_model(request: web.Request) -> web.Response:
    node = await require_admin(request)
    model = request.match_info["model"]
    # a model id with a control character has no stored settings (and is not one to look up)
    if not forms.clean(model) or not await reset_model(node, request.app[MANAGED], model):
        raise NotFound(f"Model {model!r} has no stored settings")
    return json_response({"deleted": True})


async def post_model_test(request: web.Request) -> web.Response:
    node = await require_admin(request)
    body = await _body(request, node)
    provider = body.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise InvalidRequest("'provider' must be a provider's name", details={"param": "provider"})
    model = request.match_info["model"]
    return json_response(await test_model(node, request.app[MANAGED], model, provider))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/api/providers", get_providers)
    app.router.add_post("/admin/api/providers", post_provider)
    app.router.add_put("/admin/api/providers/{provider_id}", put_provider)
    app.router.add_delete("/admin/api/providers/{provider_id}", delete_provider)
    app.router.add_get("/admin/api/models", get_models)
    app.router.add_post("/admin/api/models/{model:.+}/test", post_model_test)
    app.router.add_put("/admin/api/models/{model:.+}", put_model)
    app.router.add_delete("/admin/api/models/{model:.+}", delete_model)
