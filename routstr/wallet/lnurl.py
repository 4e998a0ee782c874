"""Where a Lightning payout goes: a bolt11 invoice as it is, or one fetched for the amount from a
Lightning address (``user@domain``) or an LNURL-pay link (``lnurl1…``, LUD-01/06/16).

The LNURL and the callback it names are URLs a user chose, so both are called only as the outbound
policy allows (``routstr.net.outbound``: https, public addresses, checked again as the node
connects, no redirects). Whatever goes wrong, the user is told in the node's own words, the same
whether a port was open or closed and never the remote server's text; the operator finds the
details in the log (the server's origin, never a path or query, which can hold a secret).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import bech32
import orjson

from routstr.core.errors import ApiError, InvalidRequest, ServiceUnavailable
from routstr.net.addresses import DestinationError, origin_of
from routstr.net.outbound import OutboundPolicy, refused

log = logging.getLogger(__name__)

LNURL_TIMEOUT_S = 15.0
MAX_ANSWER_BYTES = 64 * 1024  # an LNURL answer is a few hundred bytes
_USER = re.compile(r"[a-z0-9\-_.+]+", re.IGNORECASE)  # LUD-16
_DOMAIN = re.compile(r"[a-z0-9\-.]+(:[0-9]{1,5})?|\[[0-9a-f:.]+\](:[0-9]{1,5})?", re.IGNORECASE)

NOT_ALLOWED = (
    "The Lightning address points to a server this node does not call (payouts go to public https "
    "servers only); nothing was paid"
)
NO_PAY_REQUEST = "The Lightning address did not answer with a valid payment request; nothing was paid"
NO_INVOICE = "The Lightning address did not answer with a valid invoice; nothing was paid"
DECLINED = "The Lightning address's server declined to make an invoice; nothing was paid"


@dataclass(frozen=True, slots=True)
class PayRequest:
    """A LNURL-pay endpoint: it makes invoices for amounts between its bounds (in msat)."""

    callback: str
    min_msat: int
    max_msat: int


def is_bolt11(dest: str) -> bool:
    return dest.lower().startswith(("lnbc", "lntb", "lntbs", "lnbcrt", "lnsb"))


def lnurl_endpoint(dest: str, allow_http: bool = False) -> str:
    """The URL behind a Lightning address or an ``lnurl1…`` string (not yet checked by the policy)."""
    dest = dest.strip()
    if dest.lower().startswith("lightning:"):
        dest = dest[10:]
    if "@" in dest and not dest.lower().startswith("lnurl"):
        user, _, domain = dest.partition("@")
        if not _USER.fullmatch(user) or not _DOMAIN.fullmatch(domain):
            raise InvalidRequest("Not a Lightning address (user@domain)", code="invalid_destination")
        local = domain.startswith(("127.", "localhost", "[")) or ":" in domain
        scheme = "http" if allow_http and local else "https"
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
    url = bytes(raw).decode(errors="replace")
    if not (url.startswith("https://") or (allow_http and url.startswith("http://"))):
        raise InvalidRequest("An LNURL must point to an https URL", code="invalid_destination")
    return url


def _not_called(url: str, e: DestinationError, failure: str) -> ApiError:
    """A refused or unresolvable URL: refused is final (an expiring key keeps its balance),
    unresolvable may pass later."""
    log.info("lnurl: not calling %s: %s", origin_of(url), e.message)
    if e.code == "destination_unresolvable":  # as if it had not answered
        return ServiceUnavailable(failure)
    return InvalidRequest(NOT_ALLOWED, code="destination_not_allowed")


async def _get_json(
    session: aiohttp.ClientSession,
    policy: OutboundPolicy,
    url: str,
    failure: str,
    params: dict[str, str] | None = None,
) -> Any:
    """The JSON answer of one GET the policy allows; ``failure`` is what the user is told otherwise."""
    try:
        await policy.check(url)
    except DestinationError as e:
        raise _not_called(url, e, failure) from None
    try:
        async with session.get(
            url, params=params, timeout=aiohttp.ClientTimeout(total=LNURL_TIMEOUT_S), allow_redirects=False
        ) as r:
            status = r.status
            raw = await r.content.read(MAX_ANSWER_BYTES + 1)
    except (aiohttp.ClientError, TimeoutError) as e:
        no = refused(e)
        if no is not None:  # the name resolved elsewhere by the time the node connected
            raise _not_called(url, no, failure) from None
        log.info("lnurl: %s did not answer: %s", origin_of(url), type(e).__name__)
        raise ServiceUnavailable(failure) from None
    try:
        body = orjson.loads(raw) if len(raw) <= MAX_ANSWER_BYTES else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and str(body.get("status", "")).upper() == "ERROR":
        reason = str(body.get("reason", ""))[:200]
        log.info("lnurl: %s declined (HTTP %d): %r", origin_of(url), status, reason)
        raise InvalidRequest(DECLINED, code="invalid_destination")
    if status != 200 or body is None:
        log.info("lnurl: %s answered HTTP %d, %d bytes, not usable JSON", origin_of(url), status, len(raw))
        raise ServiceUnavailable(failure)
    return body


async def pay_request(session: aiohttp.ClientSession, policy: OutboundPolicy, url: str) -> PayRequest:
    """The pay endpoint behind ``url`` (LUD-06's first step); its callback is checked when called."""
    body = await _get_json(session, policy, url, NO_PAY_REQUEST)
    try:
        if body["tag"] != "payRequest" or not isinstance(body["callback"], str):
            raise KeyError("tag")
        req = PayRequest(body["callback"], int(body["minSendable"]), int(body["maxSendable"]))
    except (KeyError, TypeError, ValueError):
        log.info("lnurl: %s answered something other than an LNURL-pay request", origin_of(url))
        raise InvalidRequest(NO_PAY_REQUEST, code="invalid_destination") from None
    if not 0 < req.min_msat <= req.max_msat:
        log.info("lnurl: %s gave bounds %d-%d msat", origin_of(url), req.min_msat, req.max_msat)
        raise InvalidRequest(NO_PAY_REQUEST, code="invalid_destination")
    return req


async def invoice_for(
    session: aiohttp.ClientSession, policy: OutboundPolicy, req: PayRequest, amount_msat: int
) -> str:
    """An invoice for ``amount_msat`` from the pay endpoint's callback (LUD-06)."""
    if not req.min_msat <= amount_msat <= req.max_msat:
        raise InvalidRequest(
            f"The Lightning address takes {req.min_msat}-{req.max_msat} msat; the payout is {amount_msat}",
            code="invalid_destination",
        )
    body = await _get_json(session, policy, req.callback, NO_INVOICE, {"amount": str(amount_msat)})
    pr = body.get("pr") if isinstance(body, dict) else None
    if not isinstance(pr, str) or not is_bolt11(pr):
        log.info("lnurl: %s answered without a bolt11 invoice", origin_of(req.callback))
        raise ServiceUnavailable(NO_INVOICE)
    return pr
