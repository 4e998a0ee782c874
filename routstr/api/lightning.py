"""Lightning top-ups: an invoice of the node's mint that creates or credits a key once paid.

The shapes are Routstr Core's, which routstr-sdk (``LightningPayments``) and Routstr Core's own UI
read: create answers 200 with ``payment_hash``; status says ``status: pending|paid|expired`` (and
``state``, the same value, for this node's earlier clients); ``recover`` finds an invoice by its bolt11.
Every route is served under ``/lightning``, ``/v1/balance/lightning`` and ``/v1/wallet/lightning``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from routstr.api.balance import token_key_alias
from routstr.api.responses import json_response
from routstr.billing.auth import missing_key
from routstr.billing.body import read_json_body
from routstr.core.errors import AuthenticationFailed, InvalidRequest
from routstr.core.keys import bearer_kind
from routstr.net.client_address import client_address
from routstr.node import NODE
from routstr.storage import child_store, invoice_store
from routstr.wallet.lightning_in import InvoiceStatus, check_request

# /lightning: Routstr Core's UI; /v2/lightning: routstr-sdk's LightningPayments; the rest: aliases
PREFIXES = ("/lightning", "/v2/lightning", "/v1/balance/lightning", "/v1/wallet/lightning")
_STATE = {invoice_store.PENDING: "pending", invoice_store.SETTLED: "paid", invoice_store.EXPIRED: "expired"}


def _client(request: web.Request) -> str | None:
    """The client's address (through a trusted proxy's X-Forwarded-For), for per-address limits."""
    return client_address(request, request.app[NODE].settings.trusted_proxies)


def _seconds(ms: int | None) -> int | None:
    return ms // 1000 if ms else None


def _topup_key(request: web.Request, body: dict[str, Any]) -> str:
    """The key a top-up credits: ``Authorization``/``x-api-key``, or ``api_key`` in the body (what
    Routstr Core's UI sends). Both given and different: refused, rather than guessing which to credit."""
    header = request.app[NODE].auth.bearer(request.headers)
    given = body.get("api_key")
    if given is None:
        if header is None:
            raise missing_key()
        return header
    if not isinstance(given, str):
        raise InvalidRequest("'api_key' must be a string", details={"param": "api_key"})
    given = given.strip()
    if bearer_kind(given) is None:
        raise AuthenticationFailed("Invalid API key: expected an sk-… key or a Cashu token")
    if header is not None and header != given:
        raise InvalidRequest(
            "The key in the body differs from the one in the headers: send one",
            details={"param": "api_key"},
        )
    return given


async def create_invoice(request: web.Request) -> web.Response:
    """``{amount_sats, purpose: "create"|"topup", api_key?}`` → ``{invoice_id, bolt11, amount_sats,
    expires_at, payment_hash, …}``. Keep ``invoice_id`` (or the bolt11): they lead to the key a
    "create" invoice makes."""
    node = request.app[NODE]
    _, body = await read_json_body(request, node.settings.max_body_bytes)
    amount = body.get("amount_sats", body.get("amount"))
    purpose = body.get("purpose", "create")
    amount_sats = check_request(amount, purpose)
    key_id = api_key = None
    if purpose == "topup":
        given = _topup_key(request, body)
        key_id = await node.auth.key_id(given, _client(request))
        # the key the paid status hands back: the sk- key the client holds (a child key's own), or
        # for a Cashu token the sk- key of the token's balance, as /v1/balance/info gives it
        api_key = given if bearer_kind(given) == "sk" else await token_key_alias(node, key_id)
        async with node.db.read() as conn:  # a child key's top-up goes to the balance it spends
            key_id = await child_store.payer_of(conn, key_id)
    inv = await node.invoices.create(amount_sats, str(purpose), key_id, api_key)
    return json_response(
        {
            "invoice_id": inv.id,
            "bolt11": inv.bolt11,
            "amount_sats": inv.amount,
            "expires_at": _seconds(inv.expires_at),
            "payment_hash": inv.payment_hash,
            "purpose": inv.purpose,
            "created_at": _seconds(inv.created_at),
        }
    )


def _status_body(s: InvoiceStatus, with_balance: bool = True) -> dict[str, Any]:
    state = _STATE.get(s.invoice.state, s.invoice.state)
    out: dict[str, Any] = {
        "invoice_id": s.invoice.id,
        "status": state,
        "state": state,
        "amount_sats": s.invoice.amount,
        "purpose": s.invoice.purpose,
        "payment_hash": s.invoice.payment_hash,
        "created_at": _seconds(s.invoice.created_at),
        "paid_at": _seconds(s.invoice.paid_at),
        "expires_at": _seconds(s.invoice.expires_at),
    }
    if s.api_key is not None:
        out["api_key"] = s.api_key
    if s.balance_msat is not None and with_balance:
        out["balance"] = s.balance_msat
    return out


async def invoice_status(request: web.Request) -> web.Response:
    """pending → paid (the key is created or credited then, once) or expired. Paid: ``api_key`` is
    the key a "create" invoice made, or the one a "topup" invoice was made with (routstr-sdk's
    ``validateStatus`` requires one on every paid status); the id is known only to its creator."""
    node = request.app[NODE]
    return json_response(_status_body(await node.invoices.status(request.match_info["invoice_id"])))


async def recover(request: web.Request) -> web.Response:
    """``{bolt11}`` → the status body of this node's invoice with that bolt11.

    Whoever holds the whole bolt11 gets a paid "create" invoice's key (Routstr Core's model: the
    payer owns what they paid for). A top-up invoice's answer carries neither key nor balance: its
    payer (a custodial wallet, a friend) may be someone other than the key's owner, and must not get
    the key's whole balance; its status by ``invoice_id`` has the key."""
    node = request.app[NODE]
    _, body = await read_json_body(request, node.settings.max_body_bytes)
    invoice = body.get("bolt11")
    if not isinstance(invoice, str) or not invoice.strip():
        raise InvalidRequest("'bolt11' must be the invoice, a string", details={"param": "bolt11"})
    s = await node.invoices.recover(invoice)
    return json_response(_status_body(s, with_balance=s.invoice.purpose == "create"))


def add_routes(app: web.Application) -> None:
    for prefix in PREFIXES:
        app.router.add_post(prefix + "/invoice", create_invoice)
        app.router.add_get(prefix + "/invoice/{invoice_id}/status", invoice_status)
        app.router.add_post(prefix + "/recover", recover)
