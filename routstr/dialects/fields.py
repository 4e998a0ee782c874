"""What every dialect reads the same way: the request fields all of them have, what a request sends
(the text that becomes prompt tokens, and its images), and bytes of text in values of any shape.

Refused with 400 ``unbounded_input``: content by reference whose tokens neither the body's bytes nor a
per-item bound limit (files, stored responses and conversations, stored prompts, item references).
Refused with 400 ``unpriced_feature``: extras a provider bills beyond tokens (priority processing,
built-in server tools, background runs, audio output). Each dialect module says which of its fields
are which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from routstr.core.errors import InvalidRequest

MAX_MODEL_ID = 256
MOST_OUTPUT = 2**31 - 1  # no model writes more; a bigger limit would overflow a provider's parser
# tiers a provider bills at (or below) its standard token prices
STANDARD_TIERS = frozenset({"auto", "default", "flex", "standard_only"})


@dataclass(slots=True)
class Sent:
    """Bytes of everything that becomes prompt tokens, and the images among them."""

    text_bytes: int = 0
    images: int = 0

    def text(self, value: Any) -> None:
        if isinstance(value, str):
            self.text_bytes += len(value.encode())

    def json(self, value: Any) -> None:
        """Structured input (tool definitions, schemas, tool arguments): as its compact JSON."""
        if value is not None:
            self.text_bytes += len(value.encode()) if isinstance(value, str) else len(orjson.dumps(value))


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", details={"param": "model"})
    if len(model) > MAX_MODEL_ID or not model.isprintable():  # no model id has control characters
        raise InvalidRequest("'model' is not a valid model id", details={"param": "model"})
    return model


def positive_int(body: dict[str, Any], name: str) -> int | None:
    """An output limit the node reserves for and sends on: 1 to 2^31 - 1 (no model writes more, and
    a bigger one would overflow the reservation's arithmetic or the provider's parser), else 400."""
    v = body.get(name)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not 0 < v <= MOST_OUTPUT:
        raise InvalidRequest(f"'{name}' must be an integer from 1 to {MOST_OUTPUT}", details={"param": name})
    return v


def positive_count(body: dict[str, Any], name: str, most: int) -> int:
    v = body.get(name, 1)
    if v is None:
        return 1
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= most:
        raise InvalidRequest(f"'{name}' must be an integer from 1 to {most}", details={"param": name})
    return v


def stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", details={"param": "stream"})
    return stream


def check_tier(body: dict[str, Any]) -> None:
    tier = body.get("service_tier")
    if tier is not None and tier not in STANDARD_TIERS:
        raise unpriced(f"service_tier {tier!r}", "service_tier")


def unbounded(what: str, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"{what} cannot be priced before the request runs, so this node does not accept it; "
        "send the content itself in the request",
        details={"param": param},
        code="unbounded_input",
    )


def unpriced(what: str, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"{what} is billed by providers beyond tokens, and this node does not price it",
        details={"param": param},
        code="unpriced_feature",
    )


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


def str_bytes(v: Any) -> int:
    """UTF-8 bytes of a string (0 for anything else): text an answer delivered."""
    return len(v.encode()) if isinstance(v, str) else 0


def json_bytes(v: Any) -> int:
    """Bytes of a structured value an answer delivered (a tool call's input) as compact JSON."""
    if v is None or v == {}:
        return 0
    return str_bytes(v) if isinstance(v, str) else len(orjson.dumps(v))


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def count_at(d: Any, *path: str) -> int:
    """A token count reported at ``path`` in a usage object (0 when absent, negative or not an int)."""
    for key in path:
        if not isinstance(d, dict):
            return 0
        d = d.get(key)
    return d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else 0


def has_counts(u: Any, *keys: str) -> bool:
    """``u`` is a usage object with these counts (else the answer reported no usage)."""
    return isinstance(u, dict) and all(isinstance(u.get(k), int) for k in keys)
