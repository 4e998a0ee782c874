"""Small pieces the endpoint adapters share: request checks and the cost object users see."""

from __future__ import annotations

from typing import Any

from routstr.core.errors import InvalidRequest
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


def text_bytes(content: Any) -> int:
    """UTF-8 bytes of the text in a content value: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return len(content.encode())
    if isinstance(content, list):
        n = 0
        for part in content:
            if isinstance(part, str):
                n += len(part.encode())
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                n += len(part["text"].encode())
        return n
    return 0


def positive_int(body: dict[str, Any], name: str) -> int | None:
    """An output limit the node reserves for and sends on: 1 to 2^31 - 1 (no model writes more, and
    a bigger one would overflow the reservation's arithmetic or the provider's parser), else 400."""
    most = 2**31 - 1
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= most:
        raise InvalidRequest(f"'{name}' must be an integer from 1 to {most}", details={"param": name})
    return v


MAX_MODEL_ID = 256


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", details={"param": "model"})
    if len(model) > MAX_MODEL_ID or not model.isprintable():  # no model id has control characters
        raise InvalidRequest("'model' is not a valid model id", details={"param": "model"})
    return model


def stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", details={"param": "stream"})
    return stream


def include_usage(body: dict[str, Any]) -> bool:
    """Ask an OpenAI-style stream for its final usage chunk; True if the body changed."""
    opts = body.get("stream_options")
    if isinstance(opts, dict) and opts.get("include_usage") is True:
        return False
    body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    return True


def wants_usage(body: dict[str, Any]) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, dict) and bool(opts.get("include_usage"))
