"""The OpenAPI document, written out by hand: the routes are few and their shapes are the spec's."""

from __future__ import annotations

from typing import Any

from routstr import __version__
from routstr.api import (
    openapi_admin,
    openapi_balance,
    openapi_child_keys,
    openapi_lightning,
    openapi_webhooks,
)

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "example": "insufficient_balance"},
                "message": {"type": "string"},
                "code": {"type": "string", "example": "payment_required"},
                "details": {"type": "object"},
            },
            "required": ["type", "message", "code"],
        }
    },
}
_ERR_REF = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    names = {
        400: "Malformed request or token",
        401: "Invalid or missing API key",
        402: "Insufficient balance",
        404: "Not found",
        413: "Body too large",
        429: "Rate limited upstream",
        502: "Upstream error",
        503: "Mint unavailable",
    }
    return {
        str(c): {"description": names[c], "content": {"application/json": {"schema": _ERR_REF}}}
        for c in codes
    }


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


_TOKEN_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"cashu_token": {"type": "string", "description": "cashuA… or cashuB…"}},
            }
        }
    },
}
_BALANCE = {
    "type": "object",
    "properties": {
        "balance": {"type": "integer", "description": "available msat"},
        "reserved": {"type": "integer", "description": "msat held for requests in flight"},
        "unit": {"type": "string", "example": "msat"},
        "mint": {"type": "string"},
        "total_spent": {"type": "integer"},
        "total_requests": {"type": "integer"},
        "api_key": {"type": "string", "description": "info: this balance's sk- key (also for a token key)"},
        "is_child": {"type": "boolean"},
        "balance_limit": {"type": "integer", "nullable": True},
        "balance_limit_reset": {"type": "string", "nullable": True},
        "validity_date": {"type": "integer", "nullable": True},
    },
}
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
# what the node accepts (an empty model or messages, an output limit < 1 or >= 2^31 is a 400)
_MODEL = {"type": "string", "minLength": 1}
_OUTPUT_LIMIT = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


def _llm(summary: str, required: list[str]) -> dict[str, Any]:
    """A billed endpoint whose body is the provider's own (passed through, priced from usage)."""
    body = {
        "type": "object",
        "required": required,
        "properties": {"model": _MODEL},
        "additionalProperties": True,
    }
    return {
        "post": {
            "tags": ["LLM"],
            "summary": summary,
            "security": _SECURED,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": {
                    "description": _COST_NOTE,
                    "headers": {**_LOWERED, **_XCASHU},
                    "content": {"application/json": {}, "text/event-stream": {}},
                },
                **_errors(400, 401, 402, 404, 413, 429, 502, 503),
            },
        }
    }


_NUM = {"type": "number"}
_LOWERED = {
    "X-Routstr-Max-Tokens-Lowered": {
        "description": "`<from>-><to>`: the request's own output limit (max_tokens, max_completion_tokens "
        "or max_output_tokens, per generation) was more than the balance could reserve, so it was lowered "
        "to what the balance pays for (not below MIN_FITTED_MAX_TOKENS) and sent upstream",
        "schema": {"type": "string", "example": "32000->5230"},
    }
}
_XCASHU = {  # a request paid with a Cashu token in its X-Cashu header (NUT-24)
    "X-Cashu": {
        "description": "The change, a cashuB token (also in X-Cashu-Refund). A stream has it when it "
        "starts: the token's value beyond the reservation (the rest, `change`, is in the last event's "
        "`usage.cost.x_cashu`; `early_change` says what the header held). On an error it holds the whole "
        "value back, and only when the request carried a token; without key and token, the 401/402 "
        "holds a NUT-18 `creqA` payment request instead. A token too small is a 400 `token_too_small` "
        "with `details.amount` (and `amount_unit`) to send",
        "schema": {"type": "string", "example": "cashuB…"},
    }
}
_COST_NOTE = (
    "The provider's answer (the last stream event for a stream); the charge is in `usage.cost` "
    "`{msats, sats, total_msats, total_usd}` (USD null without a BTC/USD rate), `usage.cost_sats` and "
    "the X-Routstr-Cost-Msats header"
)
_MODEL_ENTRY = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "context_length": {
            "type": "integer",
            "description": "always an integer: the model's own, else the output tokens the node reserves",
        },
        "pricing": {
            "type": "object",
            "description": "USD per token / per request, as numbers (0 while the node has no BTC/USD rate)",
            "additionalProperties": _NUM,
        },
        "sats_pricing": {
            "type": "object",
            "properties": {
                k: _NUM for k in ("prompt", "completion", "request", "max_prompt_cost", "max_completion_cost")
            }
            | {"max_cost": _NUM},
        },
        "top_provider": {"type": "object"},
    },
}
_MODELS_GET = {
    "get": {
        "tags": ["LLM"],
        "summary": "Models with prices (OpenRouter schema + sats_pricing)",
        "responses": {
            "200": _json(
                "Model list",
                {"type": "object", "properties": {"data": {"type": "array", "items": _MODEL_ENTRY}}},
            )
        },
    }
}
_MODEL_PATHS = {
    "type": "object",
    "properties": {
        "object": {"type": "string", "example": "model_paths"},
        "paths": {
            "type": "object",
            "additionalProperties": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "provider": {"type": "string"},
                        "model": {"type": "string", "description": "the id the provider is asked for"},
                        "kind": {"type": "string", "enum": ["openai", "anthropic"]},
                    },
                },
            },
        },
    },
}
# the LLM routes also served without /v1 (the node's root as the base URL)
_WITHOUT_V1 = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/messages",
    "/v1/images/generations",
)


def openapi_document() -> dict[str, Any]:
    chat_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["model", "messages"],
                    "properties": {
                        "model": _MODEL,
                        "messages": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "object", "required": ["role"]},
                        },
                        "stream": {"type": "boolean"},
                        "max_tokens": _OUTPUT_LIMIT,
                        "max_completion_tokens": _OUTPUT_LIMIT,
                        "stream_options": {"type": "object"},
                    },
                }
            }
        },
    }
    paths: dict[str, Any] = {
        "/v1/chat/completions": {
            "post": {
                "tags": ["LLM"],
                "summary": "Chat completion (OpenAI-compatible), streamed or not; billed from usage",
                "security": _SECURED,
                "requestBody": chat_body,
                "responses": {
                    "200": {
                        "description": _COST_NOTE,
                        "headers": {**_LOWERED, **_XCASHU},
                        "content": {"application/json": {}, "text/event-stream": {}},
                    },
                    **_errors(400, 401, 402, 404, 413, 429, 502, 503),
                },
            }
        },
        "/v1/completions": _llm(
            "Legacy text completion (OpenAI-compatible), streamed or not", ["model", "prompt"]
        ),
        "/v1/embeddings": _llm("Embeddings (OpenAI-compatible), billed on input tokens", ["model", "input"]),
        "/v1/responses": _llm(
            "OpenAI Responses API, streamed or not; usage.cost in response.completed", ["model", "input"]
        ),
        "/v1/messages": _llm(
            "Anthropic Messages, translated for OpenAI-type upstreams; streamed or not",
            ["model", "max_tokens", "messages"],
        ),
        "/v1/images/generations": _llm(
            "Image generation, priced per image (per-request price)", ["model", "prompt"]
        ),
        "/v1/models": _MODELS_GET,
        "/v1/models/": _MODELS_GET,  # the same list, under the paths Routstr's clients also call
        "/models": _MODELS_GET,
        "/v1/models/paths": {
            "get": {
                "tags": ["LLM"],
                "summary": "Each model → the providers that serve it, cheapest first",
                "responses": {"200": _json("Model paths", _MODEL_PATHS)},
            }
        },
        "/v1/info": {
            "get": {
                "tags": ["Node"],
                "summary": "Node information",
                "responses": {
                    "200": _json(
                        "Info",
                        {
                            "type": "object",
                            "required": ["name", "description", "version", "npub", "mints"],
                            "properties": {
                                "name": {"type": "string"},
                                "description": {"type": "string"},
                                "version": {"type": "string"},
                                "npub": {
                                    "type": "string",
                                    "pattern": "^npub1[02-9ac-hj-np-z]{58}$",
                                    "description": "NIP-19 key that signs the node's kind-38421 announcement",
                                },
                                "mints": {"type": "array", "items": {"type": "string"}},
                                "http_url": {"type": "string"},
                                "onion_url": {"type": "string"},
                            },
                        },
                    )
                },
            }
        },
        "/v1/balance/info": {
            "get": {
                "tags": ["Balance"],
                "summary": "Balance of the key",
                "security": _SECURED,
                "responses": {"200": _json("Balance", _BALANCE), **_errors(401)},
            }
        },
        "/v1/balance/create": {
            "post": {
                "tags": ["Balance"],
                "summary": "Create an sk- key from a Cashu token",
                "requestBody": _TOKEN_BODY,
                "responses": {"201": _json("The new key (same token → same key)"), **_errors(400, 503)},
            }
        },
        "/v1/balance/topup": {
            "post": {
                "tags": ["Balance"],
                "summary": "Add a Cashu token to the key's balance",
                "security": _SECURED,
                "requestBody": _TOKEN_BODY,
                "responses": {"200": _json("Credited"), **_errors(400, 401, 503)},
            }
        },
        "/v1/balance/refund": {
            "post": {
                "tags": ["Balance"],
                "summary": "The balance as a Cashu token of the key's mint; asked again, the same "
                "token until it is spent. With X-Cashu (no key): that token's request's change, all of it "
                "not yet redeemed",
                "security": _SECURED,
                "responses": {"200": _json("Refund token"), **_errors(400, 401, 503)},
            }
        },
        **openapi_balance.balance_paths(_BALANCE, _TOKEN_BODY),
        **openapi_child_keys.child_key_paths(),
        **openapi_webhooks.webhook_paths(),
        **openapi_lightning.lightning_paths(),
        **openapi_admin.admin_paths(),
    }
    for llm_path in _WITHOUT_V1:  # clients whose base URL is the node's root (routstrd's opencode)
        paths[llm_path.removeprefix("/v1")] = paths[llm_path]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "routstr node",
            "version": __version__,
            "description": "OpenAI-compatible LLM access paid per request with Cashu eCash.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "sk-… key or Cashu token"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "adminToken": openapi_admin.SECURITY_SCHEME,
            },
        },
    }
