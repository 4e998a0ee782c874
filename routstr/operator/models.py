"""The operator's models: every model the node knows of, its price and where that comes from, its
aliases and providers, its stored settings (price, on sale, aliases) and a test call.

Settings stored here override ``PRICING_FILE`` and the providers file's aliases; a change is applied at
once in this process and within CATALOGUE_SYNC_SECONDS in every other one (``upstream/managed.py``).
"""

from __future__ import annotations

from typing import Any

from routstr.core.errors import InvalidRequest, NotFound
from routstr.core.sealed import SealError
from routstr.node import Node
from routstr.operator import forms
from routstr.storage import provider_store
from routstr.storage.provider_store import ModelSettingRow, ProviderRow
from routstr.upstream.aliases import is_pattern
from routstr.upstream.managed import ManagedCatalogue, db_spec
from routstr.upstream.probe import ProbeResult, probe
from routstr.upstream.providers import Provider


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
