"""Node information and the model list with prices (OpenRouter's schema plus ``sats_pricing``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp import web

from routstr import __version__
from routstr.api.responses import json_response
from routstr.core.errors import ServiceUnavailable
from routstr.core.money import MSAT_PER_BTC, ceil_div
from routstr.core.pricing import MTOK, ModelPrice
from routstr.node import NODE, Node


async def info(request: web.Request) -> web.Response:
    node = request.app[NODE]
    s = node.settings
    return json_response(
        {
            "name": s.name,
            "description": s.description,
            "version": __version__,
            "npub": node.nostr.npub if node.nostr else None,  # signs its Nostr announcement
            "mints": list(node.mints.urls),
            "http_url": s.http_url,
            "onion_url": s.onion_url,
            "units": ["sat", "msat"],
            "mint_status": {url: "up" if h.up else "down" for url, h in node.mints.health.items()},
            "fees": _fees(node),
            "child_key_cost_msats": s.child_key_cost_msats,  # POST /v1/balance/child-key, per key
        }
    )


def _fees(node: Node) -> dict[str, object]:
    """Every fee the node takes or passes on, so that none is hidden (prices are in /v1/models)."""
    return {
        "provider_markup": {p.spec.name: str(p.spec.fee) for p in node.providers},
        "mint_fees": "passed on at cost: mints' input fees (NUT-02) and Lightning fee reserves; "
        "the unused part of a reserve is given back",
        "x_cashu_rounding": "sat tokens are charged whole sats, rounded up",
        "foreign_mint_conversion": "off"
        if node.mints.foreign is None
        else f"up to {node.mints.foreign.max_sats} sat per token; the token's mint's input fee and "
        "Lightning fee reserve are paid out of it",
    }


def _usd(msat: Decimal, btc_usd: Decimal | None) -> float:
    """USD for an amount in msat at the node's BTC/USD rate; 0 while it has none (a listing never
    fails for a rate: ``sats_pricing`` is the price charged)."""
    if not btc_usd:
        return 0.0
    return float(msat / MSAT_PER_BTC * btc_usd)


def _sats(msat: int) -> float:
    return msat / 1000


def model_entry(node: Node, model_id: str) -> dict[str, Any]:
    """One model in OpenRouter's schema, every number a number. ``context_length`` is always an int
    (Routstr Core drops a whole list for one null): the model's own, else the output tokens the node
    reserves for it (``max_output_tokens`` or ``DEFAULT_MAX_OUTPUT_TOKENS``), the prompt size that
    ``max_cost`` assumes too. ``max_prompt_cost`` is a full context at the prompt price,
    ``max_completion_cost`` a full output at the completion price, ``max_cost`` both plus the
    per-request price (each rounded up to the msat)."""
    price: ModelPrice = node.catalogue.price(model_id)
    um = node.catalogue.models.get(model_id)
    btc = node.catalogue.btc_usd_now()
    max_out = node.catalogue.max_output(price)
    ctx = price.context_length or max_out
    per_token = Decimal(MTOK)
    return {
        "id": model_id,
        "name": um.name if um else model_id,
        "created": um.created if um else 0,
        "description": "",
        "context_length": ctx,
        "architecture": {
            "modality": "text->text",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": {
            "prompt": _usd(price.prompt_msat_per_mtok / per_token, btc),
            "completion": _usd(price.completion_msat_per_mtok / per_token, btc),
            "request": _usd(Decimal(price.request_msat), btc),
            "image": 0.0,
            "web_search": 0.0,
            "internal_reasoning": 0.0,
        },
        "sats_pricing": {
            "prompt": price.prompt_msat_per_mtok / MTOK / 1000,
            "completion": price.completion_msat_per_mtok / MTOK / 1000,
            "request": _sats(price.request_msat),
            "image": 0,
            "web_search": 0,
            "internal_reasoning": 0,
            "max_prompt_cost": _sats(ceil_div(ctx * price.prompt_msat_per_mtok, MTOK)),
            "max_completion_cost": _sats(ceil_div(max_out * price.completion_msat_per_mtok, MTOK)),
            "max_cost": _sats(price.cost_msat(ctx, max_out)),
        },
        "top_provider": {"context_length": ctx, "max_completion_tokens": max_out, "is_moderated": False},
        "per_request_limits": None,
    }


async def models(request: web.Request) -> web.Response:
    """Models on offer; a USD-priced one is left out while the BTC/USD rate is stale (no price to show)."""
    node = request.app[NODE]
    data = []
    for m in node.catalogue.listed_ids():
        try:
            data.append(model_entry(node, m))
        except ServiceUnavailable:
            continue
    return json_response({"object": "list", "data": data})


def model_paths(node: Node) -> dict[str, list[dict[str, str]]]:
    """Each listed model → the providers that serve it, in the order the node tries them (cheapest
    first; breakers aside), with the model id each is asked for (an alias maps to several)."""
    aliases = node.pipeline.aliases
    paths: dict[str, list[dict[str, str]]] = {}
    for model in node.catalogue.listed_ids():
        offers = [
            (p, target)
            for target in aliases.get(model) or (model,)
            for p in node.providers
            if p.serves(target)
        ]
        offers.sort(key=lambda offer: offer[0].spec.fee)
        paths[model] = [{"provider": p.name, "model": t, "kind": p.spec.kind} for p, t in offers]
    return paths


async def paths(request: web.Request) -> web.Response:
    return json_response({"object": "model_paths", "paths": model_paths(request.app[NODE])})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/info", info)
    for path in ("/v1/models", "/v1/models/", "/models"):
        app.router.add_get(path, models)
    app.router.add_get("/v1/models/paths", paths)
