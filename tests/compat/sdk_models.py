"""routstr-sdk's model discovery and pricing, re-expressed from ``discovery/ModelManager.ts`` and
``client/ProviderManager.ts`` (see ``tests/compat/sdk.py``): what the SDK fetches from ``/v1/models``
and ``/v1/info``, and the deposit it computes from ``sats_pricing`` before paying a request.
"""

from __future__ import annotations

import math
from typing import Any

from tests.compat.sdk import Provider, fetch, js_number, truthy

NODE_TOLERANCE_PERCENT = 1  # ProviderManager.ts: the node's default tolerance, assumed by the SDK
MARGIN = 1.05  # getRequiredSatsForModel's margin on both estimates


async def fetch_models_from_provider(p: Provider) -> list[Any]:
    """``ModelManager.fetchModelsFromProvider``: ``GET {base}v1/models``; a non-ok answer throws; the
    list is ``json.data`` when it is an array, else nothing."""
    a = await fetch(p.http, "GET", f"{p.base}v1/models")
    assert a.ok, f"ModelManager.fetchModelsFromProvider throws on {a.status}"
    data = a.json()
    listed = data.get("data") if isinstance(data, dict) else None
    return listed if isinstance(listed, list) else []


async def fetch_provider_info(p: Provider) -> dict[str, Any]:
    """``ProviderManager.ts`` ``fetchProviderInfo``: ``GET {base}v1/info`` (``version`` is matched
    against ``/^0\\.1\\./`` for old id-suffix matching; ``MintDiscovery`` reads ``mints``)."""
    a = await fetch(p.http, "GET", f"{p.base}v1/info")
    assert a.ok, a
    info = a.json()
    assert isinstance(info, dict)
    return info


def _sum_string_chars(node: Any) -> int:
    """``sumStringChars``: every string in the tree, keys included."""
    if isinstance(node, str):
        return len(node)
    if isinstance(node, list):
        return sum(_sum_string_chars(x) for x in node)
    if isinstance(node, dict):
        return sum(len(k) + _sum_string_chars(v) for k, v in node.items())
    return 0


def _node_gate_sats(model: dict[str, Any], sp: dict[str, Any], body: dict[str, Any]) -> float:
    """``nodeGateSats``: the SDK's port of the node's minimum-balance gate (no images here)."""
    max_cost = sp.get("max_cost")
    if not js_number(max_cost) or not math.isfinite(max_cost):
        return 0
    factor = 1 - NODE_TOLERANCE_PERCENT / 100
    prompt_price = sp["prompt"] if js_number(sp.get("prompt")) else 0
    completion_price = sp["completion"] if js_number(sp.get("completion")) else 0
    gate = max(1, math.floor(max_cost * 1000 * factor))
    allowance = sp["max_prompt_cost"] * factor if js_number(sp.get("max_prompt_cost")) else 0
    top = model.get("top_provider")
    limit: float | None = None
    if truthy(top) and (truthy(top.get("context_length")) or truthy(top.get("max_completion_tokens"))):
        ctx, max_out = top.get("context_length"), top.get("max_completion_tokens")
        limit = max(0, ctx - max_out) if truthy(ctx) and truthy(max_out) else ctx if truthy(ctx) else 0
    elif truthy(model.get("context_length")):
        limit = model["context_length"]
    if limit is not None:
        allowance = limit * prompt_price * factor
    prompt_tokens = _sum_string_chars(body) // 3
    if prompt_tokens > 0:
        unused = allowance - prompt_tokens * prompt_price
        if unused > 0:
            gate -= math.floor(unused * 1000)
    max_tokens = body.get("max_tokens")
    if js_number(max_tokens) and max_tokens > 0 and js_number(sp.get("max_completion_cost")):
        if completion_price > 0:
            unused = sp["max_completion_cost"] * factor - max_tokens * completion_price
            if unused > 0:
                gate -= math.floor(unused * 1000)
    return max(gate, 1) / 1000


def required_sats(model: dict[str, Any], body: dict[str, Any]) -> float:
    """``ProviderManager.getRequiredSatsForModel`` for a chat body of plain-text messages: without
    ``max_completion_cost`` the deposit is ``max_cost`` (or 50); else the larger of the component
    estimate and the gate, both x 1.05, capped at ``max_cost``."""
    messages = body.get("messages") or []
    chars = sum(len(m["content"]) for m in messages if isinstance(m.get("content"), str))
    tokens = math.ceil(chars / 2.84) if messages else 10_000
    sp = model.get("sats_pricing")
    if not truthy(sp):
        return 0
    if not truthy(sp.get("max_completion_cost")):
        return float(sp["max_cost"]) if sp.get("max_cost") is not None else 50.0
    completion = sp["max_completion_cost"]
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and truthy(sp.get("completion")):
        completion = sp["completion"] * max_tokens
    component = ((sp.get("prompt") or 0) * tokens + completion + (sp.get("request") or 0)) * MARGIN
    estimate = max(component, _node_gate_sats(model, sp, body) * MARGIN)
    if js_number(sp.get("max_cost")) and estimate > sp["max_cost"]:
        return float(sp["max_cost"])
    return estimate


def price_ranking_entry(model: dict[str, Any]) -> dict[str, float] | None:
    """``ProviderManager.getProviderPriceRankingForModel``: a model counts only when
    ``sats_pricing.prompt`` and ``.completion`` are numbers; ranked per million tokens."""
    sp = model.get("sats_pricing")
    if not truthy(sp) or not js_number(sp.get("prompt")) or not js_number(sp.get("completion")):
        return None
    return {
        "prompt_per_million": sp["prompt"] * 1_000_000,
        "completion_per_million": sp["completion"] * 1_000_000,
    }
