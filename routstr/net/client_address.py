"""Who is on the other end: the connecting address, or, behind a trusted reverse proxy, the address
that proxy says it was talking to.

``X-Forwarded-For`` is anyone's to write, so it is read only when the direct peer is one of
``TRUSTED_PROXIES``; then the hops are walked from the right (each proxy appends the address it saw)
and the first one that is not itself a trusted proxy is the client. Whatever the client put in front
of that is never reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web

Network = IPv4Network | IPv6Network
IPAddress = IPv4Address | IPv6Address


def _ip(raw: str) -> IPAddress | None:
    """An address as proxies write it: bare, ``[v6]:port`` or ``v4:port``; None if it is none."""
    raw = raw.strip()
    if raw.startswith("["):
        raw = raw[1 : raw.find("]")] if "]" in raw else raw
    elif raw.count(":") == 1:
        raw = raw.split(":", 1)[0]
    try:
        ip = ip_address(raw)
    except ValueError:
        return None
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return ip


def _trusted(ip: IPAddress | None, trusted: Sequence[Network]) -> bool:
    return ip is not None and any(ip.version == n.version and ip in n for n in trusted)


def forwarded_client(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> str | None:
    """The client's address given the direct ``peer`` and the ``X-Forwarded-For`` header values."""
    if not trusted or not _trusted(_ip(peer or ""), trusted):
        return peer
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    ip: IPAddress | None = None
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            return peer  # a proxy wrote something that is not an address: do not guess
        if not _trusted(ip, trusted):
            return str(ip)
    return peer if ip is None else str(ip)  # all ours: the first address any of them saw


def client_address(request: web.BaseRequest, trusted: Sequence[Network]) -> str | None:
    """``request.remote``, or the forwarded client when the peer is a trusted proxy."""
    if not trusted:
        return request.remote
    return forwarded_client(request.remote, request.headers.getall("X-Forwarded-For", []), trusted)
