"""The balance routes ``openapi.py`` does not describe itself: the key's history, donating, and the
``/v1/wallet/*`` names that Routstr's SDK clients (routstrd, routstr-chat) call. Each ``/v1/wallet/X``
is ``/v1/balance/X``: the same handler, the same shapes."""

from __future__ import annotations

from typing import Any

TAG = "Balance"
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
_NAMES = {
    400: "Malformed request or token",
    401: "Invalid or missing API key",
    402: "Insufficient balance",
    503: "Mint unavailable",
}
_ENTRY = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "pass as `before` to read on from here"},
        "type": {"type": "string", "enum": ["deposit", "refund", "payout"]},
        "source": {"type": "string", "enum": ["cashu", "lightning"]},
        "amount": {"type": "integer", "description": "msat credited (deposit) or taken (refund, payout)"},
        "unit": {"type": "string", "example": "msat"},
        "mint_url": {"type": "string"},
        "created_at": {"type": "integer", "description": "unix seconds"},
        "collected": {"type": "boolean", "description": "a refund's token was handed out"},
        "swept": {"type": "boolean", "description": "always false: handed-out tokens are never taken back"},
        "state": {"type": "string", "enum": ["done", "pending"]},
    },
}
_HISTORY = {
    "type": "object",
    "properties": {
        "transactions": {"type": "array", "items": _ENTRY},
        "next_before": {"type": "string", "nullable": True},
    },
}
_DONATE_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "amount_msat": {
                        "type": "integer",
                        "minimum": 1,
                        "description": "how much to give (default: the whole available balance)",
                    }
                },
            }
        }
    },
}
_DONATED = {
    "type": "object",
    "properties": {
        "donated_msat": {"type": "integer"},
        "balance": {"type": "integer", "description": "available msat left"},
        "unit": {"type": "string", "example": "msat"},
    },
}


def _errors(*codes: int) -> dict[str, Any]:
    err = {"$ref": "#/components/schemas/Error"}
    return {
        str(c): {"description": _NAMES[c], "content": {"application/json": {"schema": err}}} for c in codes
    }


def _op(summary: str, ok: dict[str, Any], codes: tuple[int, ...], **extra: Any) -> dict[str, Any]:
    return {
        "tags": [TAG],
        "summary": summary,
        "security": _SECURED,
        "responses": {**ok, **_errors(*codes)},
        **extra,
    }


def _ok(description: str, schema: dict[str, Any] | None = None, status: str = "200") -> dict[str, Any]:
    return {
        status: {
            "description": description,
            "content": {"application/json": {"schema": schema or {"type": "object"}}},
        }
    }


def balance_paths(balance: dict[str, Any], token_body: dict[str, Any]) -> dict[str, Any]:
    """``balance``: the info schema; ``token_body``: the ``{"cashu_token"}`` body (``openapi.py``'s).

    ``POST /v1/balance/donate`` is listed under its ``/v1/wallet`` name only: it is one handler."""
    limit = {"type": "integer", "minimum": 1, "maximum": 200}
    before = {"type": "string", "pattern": "^[0-9a-f]{1,64}$"}
    page = [
        {"name": "limit", "in": "query", "required": False, "schema": limit},
        {"name": "before", "in": "query", "required": False, "schema": before},
    ]
    history = {
        "get": _op(
            "The key's deposits, refunds and payouts, newest first (msat)",
            _ok("A page of history", _HISTORY),
            (400, 401),
            parameters=page,
        )
    }
    info = {"get": _op("Balance of the key, with `api_key`: its sk- key", _ok("Balance", balance), (401,))}
    return {
        "/v1/balance/history": history,
        "/v1/wallet/history": history,
        "/v1/wallet/info": info,
        "/v1/wallet/": info,
        "/v1/wallet/create": {
            "post": {
                "tags": [TAG],
                "summary": "Create an sk- key from a Cashu token (as /v1/balance/create)",
                "requestBody": token_body,
                "responses": {**_ok("The new key", None, "201"), **_errors(400, 503)},
            }
        },
        "/v1/wallet/topup": {
            "post": _op(
                "Add a Cashu token to the key's balance",
                _ok("Credited"),
                (400, 401, 503),
                requestBody=token_body,
            )
        },
        "/v1/wallet/refund": {
            "post": _op(
                "The balance as a Cashu token; asked again, the same token until it is spent",
                _ok("Refund token"),
                (400, 401, 503),
            )
        },
        "/v1/wallet/donate": {
            "post": _op(
                "Give the balance (or amount_msat of it) to the node's operator; also /v1/balance/donate",
                _ok("Donated", _DONATED),
                (400, 401, 402),
                requestBody=_DONATE_BODY,
            )
        },
    }
