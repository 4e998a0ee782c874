"""Lightning top-ups: an invoice of the node's mint that creates or credits a key once paid."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from routstr.api.info import json_response
from routstr.api.state import NODE
from routstr.billing.body import read_json_body
from routstr.net.client_address import client_address
from routstr.storage import invoice_store
from routstr.wallet.lightning_in import InvoiceStatus

_STATE = {invoice_store.PENDING: "pending", invoice_store.SETTLED: "paid", invoice_store.EXPIRED: "expired"}


def _client(request: web.Request) -> str | None:
    """The client's address (through a trusted proxy's X-Forwarded-For), for per-address limits."""
    return client_address(request, request.app[NODE].settings.trusted_proxies)


async def create_invoice(request: web.Request) -> web.Response:
    """``{amount_sats, purpose: "create"|"topup"}`` → ``{invoice_id, bolt11, amount_sats, expires_at}``.

    Keep ``invoice_id``: it is the only way to the key a "create" invoice makes (the bolt11 is not).
    """
    node = request.app[NODE]
    _, body = await read_json_body(request, node.settings.max_body_bytes)
    amount = body.get("amount_sats", body.get("amount"))
    purpose = body.get("purpose", "create")
    key_id = None
    if purpose == "topup":
        key_id = await node.auth.key_id(node.auth.require_bearer(request.headers), _client(request))
    if not isinstance(amount, int) or isinstance(amount, bool):
        amount = -1  # refused with the range in the message
    inv = await node.invoices.create(amount, str(purpose), key_id)
    return json_response(
        {
            "invoice_id": inv.id,
            "bolt11": inv.bolt11,
            "amount_sats": inv.amount,
            "expires_at": inv.expires_at // 1000 if inv.expires_at else None,
            "purpose": inv.purpose,
        },
        status=201,
    )


def _status_body(s: InvoiceStatus) -> dict[str, Any]:
    out: dict[str, Any] = {
        "invoice_id": s.invoice.id,
        "state": _STATE.get(s.invoice.state, s.invoice.state),
        "amount_sats": s.invoice.amount,
        "purpose": s.invoice.purpose,
        "expires_at": s.invoice.expires_at // 1000 if s.invoice.expires_at else None,
    }
    if s.api_key is not None:
        out["api_key"] = s.api_key
    if s.balance_msat is not None:
        out["balance"] = s.balance_msat
    return out


async def invoice_status(request: web.Request) -> web.Response:
    """pending → paid (the key is created or credited then, once) or expired."""
    node = request.app[NODE]
    return json_response(_status_body(await node.invoices.status(request.match_info["invoice_id"])))


def add_routes(app: web.Application) -> None:
    for prefix in ("/lightning", "/v1/balance/lightning"):
        app.router.add_post(prefix + "/invoice", create_invoice)
        app.router.add_get(prefix + "/invoice/{invoice_id}/status", invoice_status)
