"""Child keys in the OpenAPI document (tag ``Balance``): the same routes under ``/v1/balance`` and
``/v1/wallet`` (``routstr/api/child_keys.py``)."""

from __future__ import annotations

from typing import Any

from routstr.core.budgets import MAX_COUNT, MAX_LIMIT_MSAT, MAX_VALIDITY_S, PERIODS

TAG = "Balance"
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
_NAMES = {
    400: "Malformed request (details.param names the field), or too many child keys",
    401: "Invalid or missing API key",
    402: "The parent's balance does not cover the child keys' fee",
    403: "The caller is a child key (or a key with a spending limit)",
    404: "Not a child key of the caller",
    413: "Body too large",
}
_SECONDS = {"type": "integer", "nullable": True, "description": "unix seconds"}
_LIMITS = {
    "balance_limit": {
        "type": "integer",
        "nullable": True,
        "minimum": 0,
        "maximum": MAX_LIMIT_MSAT,
        "description": "msat the child may spend per period (null: only the parent's balance bounds it)",
    },
    "balance_limit_reset": {
        "type": "string",
        "nullable": True,
        "enum": [*PERIODS, None],
        "description": "when its spent counter goes back to 0, at UTC calendar boundaries (null: never); "
        "needs a balance_limit",
    },
    "validity_date": {
        "type": "integer",
        "nullable": True,
        "minimum": 0,
        "maximum": MAX_VALIDITY_S,
        "description": "unix seconds, in the future: the key is refused (401 key_expired) from then on",
    },
}
_CREATE_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"count": {"type": "integer", "minimum": 1, "maximum": MAX_COUNT}, **_LIMITS},
            }
        }
    },
}
_CREATED = {
    "type": "object",
    "properties": {
        "api_keys": {"type": "array", "items": {"type": "string", "example": "sk-…"}},
        "count": {"type": "integer"},
        "cost_msats": {"type": "integer", "description": "charged to the parent (CHILD_KEY_COST_MSATS each)"},
        "cost_msats_per_key": {"type": "integer"},
        "parent_balance": {"type": "integer", "description": "the parent's available msat after the fee"},
        **_LIMITS,
    },
}
_RESET_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["api_key"],
                "properties": {"api_key": {"type": "string", "description": "the child's sk- key"}},
            }
        }
    },
}
_CHILD = {
    "type": "object",
    "properties": {
        "api_key": {"type": "string"},
        "reset": {"type": "boolean"},
        "balance": {"type": "integer", "description": "what it can spend now: the parent's, within its room"},
        "reserved": {"type": "integer", "description": "msat held for its requests in flight"},
        "is_child": {"type": "boolean"},
        "balance_limit": _LIMITS["balance_limit"],
        "balance_limit_reset": _LIMITS["balance_limit_reset"],
        "balance_limit_resets_at": _SECONDS,
        "balance_limit_spent": {"type": "integer", "description": "msat charged this period"},
        "validity_date": _SECONDS,
        "total_spent": {"type": "integer"},
        "total_requests": {"type": "integer"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    err = {"$ref": "#/components/schemas/Error"}
    return {
        str(c): {"description": _NAMES[c], "content": {"application/json": {"schema": err}}} for c in codes
    }


def _ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


def child_key_paths() -> dict[str, Any]:
    create = {
        "post": {
            "tags": [TAG],
            "summary": "Make child keys: sk- keys that spend this key's balance, each within its own limit",
            "security": _SECURED,
            "requestBody": _CREATE_BODY,
            "responses": {**_ok("The new keys", _CREATED), **_errors(400, 401, 402, 403, 413)},
        }
    }
    reset = {
        "post": {
            "tags": [TAG],
            "summary": "Start a child key's period again: its spent counter back to 0 (by its parent)",
            "security": _SECURED,
            "requestBody": _RESET_BODY,
            "responses": {
                **_ok("The child's limit, as its balance info shows it", _CHILD),
                **_errors(400, 401, 404, 413),
            },
        }
    }
    paths: dict[str, Any] = {}
    for prefix in ("/v1/balance", "/v1/wallet"):
        paths[prefix + "/child-key"] = create
        paths[prefix + "/child-key/reset"] = reset
    return paths
