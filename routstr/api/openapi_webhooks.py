"""Webhooks in the OpenAPI document (tag ``Webhooks``): a key's webhooks (``routstr/api/webhooks.py``)."""

from __future__ import annotations

from typing import Any

_SECURED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
_NAMES = {400: "Malformed request or token", 401: "Invalid or missing API key", 404: "Not found"}


def _errors(*codes: int) -> dict[str, Any]:
    err = {"$ref": "#/components/schemas/Error"}
    return {
        str(c): {"description": _NAMES[c], "content": {"application/json": {"schema": err}}} for c in codes
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_WEBHOOK = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "example": "wh_3f9a…"},
        "url": {"type": "string"},
        "events": {"type": "array", "items": {"type": "string", "enum": ["balance.low", "key.expired"]}},
        "low_balance_msat": {"type": "integer", "nullable": True, "description": "balance.low threshold"},
        "created_at": {"type": "integer", "description": "unix seconds"},
    },
}


def webhook_paths() -> dict[str, Any]:
    """Webhooks of the caller's key; deliveries carry ``X-Webhook-Signature: sha256=<HMAC of the body>``."""
    body = {
        "type": "object",
        "required": ["url", "events", "secret"],
        "properties": {
            "url": {"type": "string", "description": "https; public addresses only"},
            "events": {"type": "array", "items": {"type": "string", "enum": ["balance.low", "key.expired"]}},
            "secret": {"type": "string", "minLength": 8, "maxLength": 256, "description": "signs deliveries"},
            "low_balance_sats": {"type": "integer", "description": "balance.low threshold (default 1000)"},
            "low_balance_msat": {"type": "integer", "description": "the same in msat (one or the other)"},
        },
    }
    return {
        "/v1/webhooks": {
            "post": {
                "tags": ["Webhooks"],
                "summary": "Register a webhook for the key (the secret is never returned)",
                "security": _SECURED,
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
                "responses": {"201": _json("The webhook", _WEBHOOK), **_errors(400, 401)},
            },
            "get": {
                "tags": ["Webhooks"],
                "summary": "The key's webhooks",
                "security": _SECURED,
                "responses": {
                    "200": _json(
                        "Webhooks",
                        {"type": "object", "properties": {"data": {"type": "array", "items": _WEBHOOK}}},
                    ),
                    **_errors(401),
                },
            },
        },
        "/v1/webhooks/{webhook_id}": {
            "delete": {
                "tags": ["Webhooks"],
                "summary": "Delete one of the key's webhooks (its pending deliveries too)",
                "security": _SECURED,
                "parameters": [
                    {"name": "webhook_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"204": {"description": "Deleted"}, **_errors(401, 404)},
            }
        },
    }
