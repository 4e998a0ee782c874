"""``usage.cost``: what a request cost, in the object every dialect shows its users."""

from __future__ import annotations

from typing import Any

from routstr.core.money import MSAT_PER_BTC


def cost_object(cost_msat: int, btc_usd: float | None = None) -> dict[str, Any]:
    """``usage.cost``: what the request cost. ``msats``/``sats`` are this node's names; ``total_msats``
    and ``total_usd`` are what Routstr's SDK reads (``client/usage.ts``). USD is at the node's BTC/USD
    rate, null when it has none (a node priced in sats may never fetch one). Kept an object, never a
    number: LiteLLM and typed SDKs parse ``usage.cost`` as one."""
    return {
        "msats": cost_msat,
        "sats": cost_msat / 1000,
        "total_msats": cost_msat,
        "total_usd": None if btc_usd is None else round(cost_msat * btc_usd / MSAT_PER_BTC, 9),
    }


def put_cost(usage_holder: dict[str, Any], cost: dict[str, Any]) -> None:
    """Add ``cost`` to the ``usage`` object of ``usage_holder`` (creating it if the upstream sent none),
    and ``usage.cost_sats`` beside it (the SDK's other field)."""
    usage = usage_holder.get("usage")
    if not isinstance(usage, dict):
        usage = usage_holder["usage"] = {}
    usage["cost"] = cost
    usage["cost_sats"] = cost["sats"]
