"""routstr-sdk's Lightning operations, re-expressed from ``wallet/LightningPayments.ts`` (see
``tests/compat/sdk.py``): create an invoice, poll its status until ``paid``, recover it by its bolt11,
refresh the key's balance, refund to a Lightning address; each answer checked the way the SDK checks it.

The SDK addresses these routes as ``{base}v2/lightning/...``; Routstr Core's own UI (and
../shared/spec/routstr-clients.md) as ``/lightning/...``: the prefix is a parameter.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson

from tests.compat.sdk import Provider, fetch, js_finite, js_safe_integer

SDK_PREFIX = "v2/lightning"  # LightningPayments.createInvoice / getInvoiceStatus / recoverInvoice


class LightningPaymentError(AssertionError):
    """``LightningPaymentError`` (or the SDK's ``Invalid provider ... response``): the SDK throws."""


async def _request(p: Provider, path: str, body: Any = None, api_key: str | None = None) -> dict[str, Any]:
    """``LightningPayments.request``: POST with a JSON body, else GET; ``Content-Type`` only with a
    body, ``Authorization: Bearer`` only with a key; no redirects followed; a non-ok answer throws."""
    headers: dict[str, str] = {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    url = f"{p.base.rstrip('/')}/{path}"
    data = None if body is None else orjson.dumps(body)
    a = await fetch(p.http, "GET" if body is None else "POST", url, headers=headers, data=data)
    if not a.ok:
        failed = f"Provider Lightning operation failed (HTTP {a.status}) at {path}"
        raise LightningPaymentError(f"{failed}: {a.text}")
    out = a.json()
    if not isinstance(out, dict):
        raise LightningPaymentError("Invalid provider Lightning response")
    return out


def _validate_key(api_key: Any) -> None:
    """``LightningPayments.validateKey``: a canonical ``sk-`` key."""
    if not (isinstance(api_key, str) and api_key.startswith("sk-") and len(api_key) > 3):
        raise LightningPaymentError(f"Lightning operations require a canonical sk- API key, got {api_key!r}")


async def create_invoice(
    p: Provider, amount_sats: int, purpose: str, api_key: str | None = None, prefix: str = SDK_PREFIX
) -> dict[str, Any]:
    """``LightningPayments.createInvoice``: ``{amount_sats, purpose}``, the key as Bearer for a
    top-up; the answer needs ``invoice_id`` and ``bolt11`` (non-empty strings), ``amount_sats`` equal
    to the amount asked, a finite ``expires_at`` and a string ``payment_hash``."""
    if purpose == "topup":
        _validate_key(api_key)
    body = {"amount_sats": amount_sats, "purpose": purpose}
    inv = await _request(p, f"{prefix}/invoice", body, api_key if purpose == "topup" else None)
    ok = (
        isinstance(inv.get("invoice_id"), str)
        and inv["invoice_id"]
        and isinstance(inv.get("bolt11"), str)
        and inv["bolt11"]
        and inv.get("amount_sats") == amount_sats
        and js_finite(inv.get("expires_at"))
        and isinstance(inv.get("payment_hash"), str)
    )
    if not ok:
        raise LightningPaymentError(f"Invalid provider invoice response: {inv}")
    return inv


def validate_status(status: dict[str, Any]) -> dict[str, Any]:
    """``LightningPayments.validateStatus``: a string ``status``, a positive safe-integer
    ``amount_sats``, finite ``created_at`` and ``expires_at``; a paid one must carry an sk- ``api_key``."""
    amount = status.get("amount_sats")
    ok = (
        isinstance(status.get("status"), str)
        and js_safe_integer(amount)
        and amount > 0
        and js_finite(status.get("created_at"))
        and js_finite(status.get("expires_at"))
    )
    if not ok:
        raise LightningPaymentError(f"Invalid provider invoice status: {status}")
    if status["status"] == "paid":
        _validate_key(status.get("api_key"))
    return status


async def get_invoice_status(
    p: Provider, invoice_id: str, prefix: str = SDK_PREFIX, validate: bool = True
) -> dict[str, Any]:
    """``LightningPayments.getInvoiceStatus``: ``GET .../invoice/{encodeURIComponent(id)}/status``,
    validated (``validate=False``: the answer as it came, for a test to validate later)."""
    status = await _request(p, f"{prefix}/invoice/{quote(invoice_id, safe='')}/status")
    return validate_status(status) if validate else status


async def recover_invoice(p: Provider, bolt11: str, prefix: str = SDK_PREFIX) -> dict[str, Any]:
    """``LightningPayments.recoverInvoice``: ``POST .../recover {bolt11}`` → a status."""
    return validate_status(await _request(p, f"{prefix}/recover", {"bolt11": bolt11}))


async def refresh_key_balance(p: Provider, key: str) -> tuple[float, float]:
    """``LightningPayments.refreshKeyBalance``: ``GET v1/wallet/info`` (Bearer); ``balance`` a
    non-negative safe integer, ``reserved`` absent or one too; stored as sats (msat / 1000)."""
    _validate_key(key)
    info = await _request(p, "v1/wallet/info", None, key)
    balance, reserved = info.get("balance"), info.get("reserved")
    if (
        not js_safe_integer(balance)
        or balance < 0
        or (reserved is not None and (not js_safe_integer(reserved) or reserved < 0))
    ):
        raise LightningPaymentError(f"Invalid provider balance response: {info}")
    return balance / 1000, (reserved or 0) / 1000


async def refund_to_lightning(p: Provider, api_key: str, lightning_address: str) -> dict[str, Any]:
    """``LightningPayments.refundToLightning``: ``POST v1/wallet/refund {lightning_address}`` (Bearer);
    the answer as it came (``validate_refund`` checks it as the SDK does)."""
    _validate_key(api_key)
    return await _request(p, "v1/wallet/refund", {"lightning_address": lightning_address}, api_key)


def validate_refund(refund: dict[str, Any]) -> dict[str, Any]:
    """``refundToLightning``'s check: ``refund_id``, ``status`` and ``recipient`` strings."""
    ok = (
        isinstance(refund.get("refund_id"), str)
        and refund["refund_id"]
        and isinstance(refund.get("status"), str)
        and isinstance(refund.get("recipient"), str)
    )
    if not ok:
        raise LightningPaymentError(f"Invalid provider Lightning refund response: {refund}")
    return refund
