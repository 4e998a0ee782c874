"""The events a webhook can ask for and the JSON body each delivery carries.

The body is built once, when the event is decided, and stored: every attempt sends (and signs) the
same bytes, so a receiver can de-duplicate on ``id`` and verify any retry.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

BALANCE_LOW = "balance.low"
KEY_EXPIRED = "key.expired"
EVENTS = (BALANCE_LOW, KEY_EXPIRED)


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(16)


def new_webhook_id() -> str:
    return "wh_" + secrets.token_hex(12)


def event_body(event_id: str, event: str, created_at_s: int, data: dict[str, Any]) -> str:
    """``{"id", "type", "created_at" (unix seconds), "data"}``, as compact JSON text."""
    return orjson.dumps({"id": event_id, "type": event, "created_at": created_at_s, "data": data}).decode()
