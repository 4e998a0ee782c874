"""Node information and the model list with prices (OpenRouter's schema plus ``sats_pricing``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from routstr import __version__
from routstr.api.state import NODE, Node
from routstr.core.errors import ServiceUnavailable
from routstr.core.money import MSAT_PER_BTC
from routstr.core.pricing import MTOK, ModelPrice


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


async def info(request: web.Request) -> web.Response:
    node = request.app[NODE]
    s = node.settings
    return json_response(
        {
            "name": s.name,
            "description": s.description,
            "version": __version__,
            "mints": list(node.mints.urls),
            "http_url": s.http_url,
            "onion_url": s.onion_url,
            "units": ["sat", "msat"],
            "mint_status": {url: "up" if h.up else "down" for url, h in node.mints.health.items()},
            "fees": _fees(node),
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


def _usd_per_token(msat_per_mtok: int, btc_usd: Decimal | None) -> str:
    if not btc_usd:
        return "0"
    usd = Decimal(msat_per_mtok) / MTOK / MSAT_PER_BTC * btc_usd
    return format(usd.normalize(), "f")


def _usd_per_request(msat: int, btc_usd: Decimal | None) -> str:
    if not btc_usd:
        return "0"
    return format((Decimal(msat) / MSAT_PER_BTC * btc_usd).normalize(), "f")


def model_entry(node: Node, model_id: str) -> dict[str, Any]:
    price: ModelPrice = node.catalogue.price(model_id)
    um = node.catalogue.models.get(model_id)
    btc = node.catalogue.btc_usd_now()
    max_out = node.catalogue.max_output(price)
    ctx = price.context_length
    max_prompt = ctx or max_out
    max_cost_msat = price.cost_msat(max_prompt, max_out)
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
            "prompt": _usd_per_token(price.prompt_msat_per_mtok, btc),
            "completion": _usd_per_token(price.completion_msat_per_mtok, btc),
            "request": _usd_per_request(price.request_msat, btc),
            "image": "0",
            "web_search": "0",
            "internal_reasoning": "0",
        },
        "sats_pricing": {
            "prompt": price.prompt_msat_per_mtok / MTOK / 1000,
            "completion": price.completion_msat_per_mtok / MTOK / 1000,
            "request": price.request_msat / 1000,
            "image": 0,
            "web_search": 0,
            "internal_reasoning": 0,
            "max_cost": max_cost_msat / 1000,
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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/info", info)
    app.router.add_get("/v1/models", models)
