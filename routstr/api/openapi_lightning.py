"""Lightning top-ups in the OpenAPI document (tag ``Lightning``), in Routstr Core's shapes.

Listed once under ``/lightning``; the node answers the same routes under ``/v1/balance/lightning``
and ``/v1/wallet/lightning``."""

from __future__ import annotations

from typing import Any

from routstr.wallet.lightning_in import MAX_INVOICE_SATS

TAG = "Lightning"
_ERR = {"$ref": "#/components/schemas/Error"}
_NAMES = {
    400: "Malformed request (details.param names the field)",
    401: "Top-up without a valid key",
    404: "No such invoice",
    413: "Body too large",
    429: "Too many refused tokens from this address",
    503: "The mint could not make an invoice",
}
_ALIASES = " Also under /v1/balance/lightning and /v1/wallet/lightning."
_SECONDS = {"type": "integer", "nullable": True, "description": "unix seconds"}
_HASH = {"type": "string", "nullable": True, "description": "the bolt11's payment hash, 64 hex digits"}

_CREATE_BODY = {
    "type": "object",
    "required": ["amount_sats"],
    "properties": {
        "amount_sats": {"type": "integer", "minimum": 1, "maximum": MAX_INVOICE_SATS},
        "purpose": {"type": "string", "enum": ["create", "topup"], "default": "create"},
        "api_key": {
            "type": "string",
            "description": "topup: the key to credit, if not in Authorization/x-api-key",
        },
    },
}
_INVOICE = {
    "type": "object",
    "required": ["invoice_id", "bolt11", "amount_sats", "expires_at", "payment_hash"],
    "properties": {
        "invoice_id": {"type": "string", "description": "keep it: it leads to a create invoice's key"},
        "bolt11": {"type": "string"},
        "amount_sats": {"type": "integer"},
        "expires_at": _SECONDS,
        "payment_hash": _HASH,
        "purpose": {"type": "string", "enum": ["create", "topup"]},
        "created_at": _SECONDS,
    },
}
_STATUS = {
    "type": "object",
    "required": ["status", "amount_sats", "created_at", "paid_at", "expires_at"],
    "properties": {
        "invoice_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "paid", "expired"]},
        "state": {"type": "string", "enum": ["pending", "paid", "expired"], "description": "= status"},
        "api_key": {
            "type": "string",
            "description": "paid: a create invoice's new key, or the sk- key a topup invoice was made "
            "with (a Cashu token's: its balance's sk- key); a topup's recover answer never has it",
        },
        "balance": {"type": "integer", "description": "paid: the key's balance, msat"},
        "amount_sats": {"type": "integer"},
        "purpose": {"type": "string", "enum": ["create", "topup"]},
        "payment_hash": _HASH,
        "created_at": _SECONDS,
        "paid_at": _SECONDS,
        "expires_at": _SECONDS,
    },
}


def _answers(ok: str, schema: dict[str, Any], *codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": ok, "content": {"application/json": {"schema": schema}}}}
    for c in codes:
        out[str(c)] = {"description": _NAMES[c], "content": {"application/json": {"schema": _ERR}}}
    return out


def lightning_paths() -> dict[str, Any]:
    return {
        "/lightning/invoice": {
            "post": {
                "tags": [TAG],
                "summary": "An invoice of the node's mint: paid, it creates a key (create) or credits "
                "the key sent (topup)." + _ALIASES,
                "security": [{}, {"bearer": []}, {"apiKey": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _CREATE_BODY}},
                },
                "responses": _answers("The invoice", _INVOICE, 400, 401, 413, 429, 503),
            }
        },
        "/lightning/invoice/{invoice_id}/status": {
            "get": {
                "tags": [TAG],
                "summary": "pending, paid (settled once: the key is made or credited) or expired." + _ALIASES,
                "description": "Paid, the answer carries `api_key` (routstr-sdk's LightningPayments "
                "requires one on every paid status): a create invoice's new key; for a topup invoice, "
                "the key it was made with, kept sealed (AES-GCM under the node's secret) until then. "
                "The invoice_id is 128 random bits that only the invoice's creator is given. If the "
                "node's secret changed since, a topup's status has no `api_key`.",
                "parameters": [
                    {"name": "invoice_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": _answers("Where the invoice stands", _STATUS, 404),
            }
        },
        "/lightning/recover": {
            "post": {
                "tags": [TAG],
                "summary": "The status of the invoice with this bolt11 (the whole string): a create "
                "invoice's key for whoever holds it; a topup's answer has no key and no balance." + _ALIASES,
                "description": "A bolt11 is seen by whoever pays it (a custodial wallet, a friend), who "
                "must not get the whole balance of the key a topup credits: a topup invoice's key and "
                "balance are withheld here, on purpose, and given only by its status under the "
                "invoice_id. (routstr-sdk's recoverInvoice therefore throws for a paid topup; its "
                "getInvoiceStatus does not.)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["bolt11"],
                                "properties": {"bolt11": {"type": "string"}},
                            }
                        }
                    },
                },
                "responses": _answers("Where the invoice stands", _STATUS, 400, 404, 413),
            }
        },
    }
