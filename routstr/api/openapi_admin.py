"""The admin API in the OpenAPI document (tag ``admin``): books, audit, withdrawals, rate limits,
providers, models, keys, requests, figures, mints, admin tokens and the dashboard password. Every
route needs ``Authorization: Bearer rta-…`` (``routstr admin-token create``)."""

from __future__ import annotations

from typing import Any

from routstr.operator.forms import MAX_PRICE

TAG = "admin"
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "an admin token, rta-… (routstr admin-token create)",
}
_SECURED: list[dict[str, list[str]]] = [{"adminToken": []}]
_ERR = {"$ref": "#/components/schemas/Error"}
_NAMES = {
    400: "Invalid field (details.param names it)",
    401: "No or unknown admin token",
    403: "Wrong current password",
    404: "Not found",
}

_PROVIDER_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
    "base_url": {"type": "string", "example": "https://api.openai.com/v1"},
    "kind": {"type": "string", "enum": ["openai", "anthropic"], "default": "openai"},
    "api_key": {"type": "string", "nullable": True, "description": "stored sealed; never returned"},
    "fee": {"type": "string", "example": "0.05", "description": "markup on the listed price"},
    "models": {"type": "array", "items": {"type": "string"}, "nullable": True},
    "enabled": {"type": "boolean", "default": True},
}
_PROVIDER_BODY = {"type": "object", "properties": _PROVIDER_FIELDS}
_PROVIDER = {
    "type": "object",
    "properties": {
        **{k: v for k, v in _PROVIDER_FIELDS.items() if k != "api_key"},
        "id": {"type": "integer", "nullable": True, "description": "null for providers of the files"},
        "source": {"type": "string", "enum": ["file", "database"]},
        "api_key_set": {"type": "boolean"},
        "api_key_last4": {"type": "string", "nullable": True},
        "in_rotation": {"type": "boolean"},
        "answered": {"type": "boolean", "nullable": True, "description": "its last /models fetch"},
        "cooling_down": {"type": "boolean"},
    },
}
_PRICE_NUMBER = {"type": "number", "minimum": 0, "maximum": int(MAX_PRICE)}
_PRICE_KEYS = [  # those of core.pricing: sats or USD, not both
    template.format(unit)
    for unit in ("sats", "usd")
    for template in (
        "prompt_{}_per_mtok",
        "completion_{}_per_mtok",
        "request_{}",
        "cached_prompt_{}_per_mtok",
        "cache_write_{}_per_mtok",
    )
]
_MODEL_BODY = {
    "type": "object",
    "properties": {
        "price": {
            "type": "object",
            "nullable": True,
            "properties": {
                **{k: _PRICE_NUMBER for k in _PRICE_KEYS},
                "max_output_tokens": {"type": "integer", "minimum": 1},
                "context_length": {"type": "integer", "minimum": 1},
            },
            "additionalProperties": False,
            "description": 'a [models."id"] table of the pricing file (sats or USD per Mtok, per '
            "request, cached/cache-write prices, max_output_tokens, context_length); null: the file's",
            "example": {"prompt_sats_per_mtok": 1000, "completion_sats_per_mtok": 3000},
        },
        "enabled": {"type": "boolean", "description": "false: not listed, refused as an unknown model"},
        "aliases": {
            "type": "array",
            "nullable": True,
            "items": {"type": "string"},
            "description": "provider model ids this public id stands for ([] removes the file's alias); "
            "for a wildcard id such as claude-*, exactly one (its requests are priced and billed as it)",
        },
    },
}
_MODEL = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "enabled": {"type": "boolean"},
        "listed": {"type": "boolean", "description": "shown by /v1/models"},
        "price_source": {"type": "string", "enum": ["override", "file", "default"]},
        "currency": {"type": "string", "enum": ["sat", "usd"]},
        "price": {"type": "object", "description": "in the pricing file's terms"},
        "msat": {"type": "object", "nullable": True, "description": "msat per Mtok / per request"},
        "providers": {"type": "array", "items": {"type": "string"}},
        "aliases": {"type": "array", "items": {"type": "string"}, "nullable": True},
        "wildcard": {
            "type": "boolean",
            "description": "a wildcard alias (its id has *): not listed, priced as its one target",
        },
        "override": {"type": "object", "nullable": True, "description": "the stored settings"},
    },
}
_KEY = {
    "type": "object",
    "properties": {
        name: {"type": kind, "nullable": True} if nullable else {"type": kind}
        for name, kind, nullable in (
            ("id", "integer", False),
            ("kind", "string", False),
            ("mint", "string", True),
            ("unit", "string", False),
            ("balance_msat", "integer", False),
            ("reserved_msat", "integer", False),
            ("total_spent_msat", "integer", False),
            ("total_requests", "integer", False),
            ("created_at", "integer", False),
            ("expires_at", "integer", True),
            ("refund_address", "string", True),
            ("limits_override", "object", True),
        )
    },
}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _op(
    summary: str,
    ok: dict[str, Any],
    *errors: int,
    body: dict[str, Any] | None = None,
    status: str = "200",
    **extra: Any,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": [TAG],
        "summary": summary,
        "security": _SECURED,
        "responses": {
            status: ok,
            **{
                str(c): {"description": _NAMES[c], "content": {"application/json": {"schema": _ERR}}}
                for c in (401, *errors)
            },
        },
        **extra,
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _query(*names: tuple[str, str, str]) -> list[dict[str, Any]]:
    return [{"name": n, "in": "query", "schema": {"type": t}, "description": d} for n, t, d in names]


def _path(name: str, kind: str = "string") -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "schema": {"type": kind}}]


_PAGE = (
    ("limit", "integer", "1-500, default 50"),
    ("before", "integer", "the next page: next_before of the last"),
)


def admin_paths() -> dict[str, Any]:
    model = _path("model")
    return {
        "/admin/api/books": {"get": _op("The books per mint and unit (routstr books)", _json("Books"))},
        "/admin/api/audit": {
            "get": _op(
                "Check the books (routstr audit)",
                _json("ok and problems"),
                parameters=_query(("offline", "string", "1: skip the mints")),
            )
        },
        "/admin/api/withdraw": {
            "post": _op(
                "Withdraw earnings as a token, or over Lightning with 'to' (routstr withdraw)",
                _json("The token, or the payment"),
                400,
                body={
                    "type": "object",
                    "properties": {k: {"type": "string"} for k in ("amount", "mint", "unit", "to")},
                },
            )
        },
        "/admin/api/keys/{key_id}/limits": {
            "put": _op(
                "Set one key's rate limits (0: none; each at most 2^31-1); 404 for a key that does not exist",
                _json("The limits in force"),
                400,
                404,
                body={
                    "type": "object",
                    "properties": {
                        k: {"type": "integer"}
                        for k in ("requests_per_minute", "tokens_per_hour", "concurrent")
                    },
                },
                parameters=_path("key_id", "integer"),
            ),
            "delete": _op(
                "Back to the node's default limits",
                _json("The limits in force"),
                parameters=_path("key_id", "integer"),
            ),
        },
        "/admin/api/providers": {
            "get": _op(
                "Providers: the files' (read-only) and the stored ones",
                _json(
                    "Providers",
                    {"type": "object", "properties": {"providers": {"type": "array", "items": _PROVIDER}}},
                ),
            ),
            "post": _op(
                "Add a provider (applied at once; in every process within CATALOGUE_SYNC_SECONDS)",
                _json("The provider", _PROVIDER),
                400,
                body=_PROVIDER_BODY,
                status="201",
            ),
        },
        "/admin/api/providers/{provider_id}": {
            "put": _op(
                "Change a stored provider (fields left out stay; api_key null removes the key)",
                _json("The provider", _PROVIDER),
                400,
                404,
                body=_PROVIDER_BODY,
                parameters=_path("provider_id", "integer"),
            ),
            "delete": _op(
                "Remove a stored provider",
                _json("deleted"),
                400,
                404,
                parameters=_path("provider_id", "integer"),
            ),
        },
        "/admin/api/models": {
            "get": _op(
                "Every model: effective price and its source, providers, enabled, aliases",
                _json(
                    "Models", {"type": "object", "properties": {"models": {"type": "array", "items": _MODEL}}}
                ),
            )
        },
        "/admin/api/models/{model}": {
            "put": _op(
                "Set a model's price, enabled flag or aliases (fields left out stay)",
                _json("The model", _MODEL),
                400,
                body=_MODEL_BODY,
                parameters=model,
            ),
            "delete": _op(
                "Drop the model's stored settings (the files apply again)",
                _json("deleted"),
                404,
                parameters=model,
            ),
        },
        "/admin/api/models/{model}/test": {
            "post": _op(
                "One completion of one output token at a provider, not billed: ok, status, latency_ms, error",
                _json("The result"),
                404,
                body={
                    "type": "object",
                    "properties": {
                        "provider": {
                            "type": "string",
                            "description": "which one (default: the one that would answer)",
                        }
                    },
                },
                parameters=model,
            )
        },
        "/admin/api/keys": {
            "get": _op(
                "Keys newest first, or those q names: an id, a pasted sk-… key or Cashu token (only hashed)",
                _json(
                    "Keys",
                    {
                        "type": "object",
                        "properties": {
                            "keys": {"type": "array", "items": _KEY},
                            "next_before": {"type": "integer", "nullable": True},
                        },
                    },
                ),
                400,
                parameters=_query(("q", "string", "a key id, an sk-… key or a Cashu token"), *_PAGE),
            )
        },
        "/admin/api/keys/{key_id}": {
            "get": _op(
                "One key and its latest ledger rows",
                _json("The key", _KEY),
                404,
                parameters=[*_path("key_id", "integer"), *_query(("ledger", "integer", "rows, default 50"))],
            )
        },
        "/admin/api/requests": {
            "get": _op(
                "Requests newest first: time, key, model, tokens, cost (or 'not charged')",
                _json("Requests"),
                400,
                parameters=_query(("key_id", "integer", ""), ("model", "string", ""), *_PAGE),
            )
        },
        "/admin/api/overview": {
            "get": _op(
                "Per hour: requests, revenue, paid in, refunded; per model; wallet vs liabilities",
                _json("Figures"),
                400,
                parameters=_query(("hours", "integer", "1-744, default 24")),
            )
        },
        "/admin/api/mints": {"get": _op("The mints: health, exposure, wallet per unit", _json("Mints"))},
        "/admin/api/tokens": {
            "get": _op("Admin tokens: id, name, created_at, revoked_at (never the token)", _json("Tokens")),
            "post": _op(
                "A new admin token, shown this once (routstr admin-token create)",
                _json("id, name and token"),
                400,
                body={"type": "object", "properties": {"name": {"type": "string", "maxLength": 64}}},
                status="201",
            ),
        },
        "/admin/api/tokens/{token_id}": {
            "delete": _op(
                "Revoke a token, at once for every process",
                _json("revoked"),
                404,
                parameters=_path("token_id", "integer"),
            )
        },
        "/admin/api/password": {
            "put": _op(
                "Change the dashboard password; every dashboard session is logged out",
                _json("changed, sessions_ended"),
                400,
                403,
                body={
                    "type": "object",
                    "properties": {
                        "current": {"type": "string", "description": "not needed while none is set"},
                        "new": {"type": "string", "minLength": 8},
                    },
                },
            )
        },
    }
