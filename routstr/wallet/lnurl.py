"""Where a Lightning payout goes: a bolt11 invoice as it is, or one fetched for the amount from a
Lightning address (``user@domain``) or an LNURL-pay link (``lnurl1…``, LUD-01/06/16)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import bech32

from routstr.core.errors import InvalidRequest, ServiceUnavailable

LNURL_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class PayRequest:
    """A LNURL-pay endpoint: it makes invoices for amounts between its bounds (in msat)."""

    callback: str
    min_msat: int
    max_msat: int


def is_bolt11(dest: str) -> bool:
    return dest.lower().startswith(("lnbc", "lntb", "lntbs", "lnbcrt", "lnsb"))


def lnurl_endpoint(dest: str, allow_http: bool = False) -> str:
    """The URL behind a Lightning address or an ``lnurl1…`` string."""
    dest = dest.strip()
    if dest.lower().startswith("lightning:"):
        dest = dest[10:]
    if "@" in dest and not dest.lower().startswith("lnurl"):
        user, _, domain = dest.partition("@")
        if not user or not domain or "/" in domain:
            raise InvalidRequest(f"Not a Lightning address: {dest!r}", code="invalid_destination")
        scheme = (
            "http" if allow_http and (domain.startswith(("127.", "localhost")) or ":" in domain) else "https"
        )
        return f"{scheme}://{domain}/.well-known/lnurlp/{user}"
    hrp, data = bech32.bech32_decode(dest.lower())
    if hrp != "lnurl" or data is None:
        raise InvalidRequest(
            "The destination must be a bolt11 invoice, a Lightning address or an LNURL-pay link",
            code="invalid_destination",
        )
    raw = bech32.convertbits(data, 5, 8, False)
    if raw is None:
        raise InvalidRequest("Malformed LNURL", code="invalid_destination")
    url = bytes(raw).decode()
    if not (url.startswith("https://") or (allow_http and url.startswith("http://"))):
        raise InvalidRequest("An LNURL must point to an https URL", code="invalid_destination")
    return url


async def _get_json(session: aiohttp.ClientSession, url: str, params: dict[str, str] | None = None) -> Any:
    try:
        async with session.get(
            url, params=params, timeout=aiohttp.ClientTimeout(total=LNURL_TIMEOUT_S), allow_redirects=False
        ) as r:
            body = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise ServiceUnavailable(f"The Lightning address's server did not answer: {e}") from None
    if isinstance(body, dict) and str(body.get("status", "")).upper() == "ERROR":
        raise InvalidRequest(
            f"The Lightning address's server refused: {body.get('reason', '')}", code="invalid_destination"
        )
    return body


async def pay_request(session: aiohttp.ClientSession, url: str) -> PayRequest:
    body = await _get_json(session, url)
    try:
        if body["tag"] != "payRequest":
            raise KeyError("tag")
        return PayRequest(str(body["callback"]), int(body["minSendable"]), int(body["maxSendable"]))
    except (KeyError, TypeError, ValueError):
        raise InvalidRequest(
            "The destination is not an LNURL-pay endpoint", code="invalid_destination"
        ) from None


async def invoice_for(session: aiohttp.ClientSession, req: PayRequest, amount_msat: int) -> str:
    """An invoice for ``amount_msat`` from the pay endpoint's callback (LUD-06)."""
    if not req.min_msat <= amount_msat <= req.max_msat:
        raise InvalidRequest(
            f"The Lightning address takes {req.min_msat}-{req.max_msat} msat; the payout is {amount_msat}",
            code="invalid_destination",
        )
    body = await _get_json(session, req.callback, {"amount": str(amount_msat)})
    pr = body.get("pr") if isinstance(body, dict) else None
    if not isinstance(pr, str) or not is_bolt11(pr):
        raise ServiceUnavailable("The Lightning address's server sent no invoice")
    return pr
