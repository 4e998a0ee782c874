"""Where a webhook may be sent: public addresses only, unless the operator allows private ones.

A webhook URL is chosen by whoever holds a key, so without this rule the node could be made to
POST into the operator's own network (SSRF). The rule (``routstr.net.addresses``, shared with every
other call to a URL a user chose) is checked at registration and again at every delivery, on the
addresses the host resolves to then; the delivery connects to the address that was checked
(``Destination.url_for``), so a DNS answer that changes in between cannot slip past it.
"""

from __future__ import annotations

from routstr.net import addresses
from routstr.net.addresses import IP, MAX_URL_LENGTH, Destination, DestinationError, refusal

__all__ = ["IP", "MAX_URL_LENGTH", "Destination", "DestinationError", "parse_url", "refusal", "resolve"]


def parse_url(url: str, allow_http: bool) -> Destination:
    """An absolute https URL (http only if allowed) without credentials; raises DestinationError
    with the code the webhook API answers with."""
    return addresses.parse_url(url, allow_http, code="invalid_webhook_url")


async def resolve(dest: Destination, allow_private: bool, timeout_s: float = 5.0) -> list[str]:
    """The addresses to deliver to, all of them allowed (see ``routstr.net.addresses.resolve``)."""
    try:
        return await addresses.resolve(dest, allow_private, timeout_s)
    except DestinationError as e:
        if e.code != "destination_not_allowed":
            raise
        raise DestinationError(f"{e.message}; webhooks go to public addresses only", e.code) from None
