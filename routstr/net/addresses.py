"""Which URLs and addresses the node may call when a user chose them (the SSRF rule).

A URL someone outside the node picked (a webhook receiver, a Lightning address, an LNURL callback,
a foreign mint) could otherwise point into the operator's own network. The rule: an absolute
https URL (http only if the operator allows it) without credentials, whose host resolves only to
public addresses; loopback, private, link-local, shared and reserved space only when the operator
allows private destinations; multicast and the unspecified address never.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import quote

from yarl import URL

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))


class DestinationError(ValueError):
    """A URL the node will not call; ``code`` is the error code an API answers with."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code


@dataclass(frozen=True, slots=True)
class Destination:
    scheme: str
    host: str  # IDNA-encoded host name, or an IP address without brackets
    port: int
    path_qs: str  # encoded, as received

    @property
    def ip(self) -> IP | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def url_for(self, address: str) -> URL:
        """The URL with its host replaced by one checked address (the Host header and TLS name stay)."""
        netloc = f"[{address}]" if ":" in address else address
        return URL(f"{self.scheme}://{netloc}:{self.port}{self.path_qs}", encoded=True)


def origin_of(url: str) -> str:
    """What a log may show of a user's URL: scheme, host and port (a path or query can hold a secret)."""
    try:
        return str(URL(url).origin())
    except (ValueError, UnicodeError):
        return "(not a URL)"


def parse_url(url: str, allow_http: bool, code: str = "invalid_url") -> Destination:
    """An absolute https URL (http only if allowed) without credentials; raises DestinationError."""
    if not url or len(url) > MAX_URL_LENGTH or any(c <= " " or c == "\x7f" for c in url):
        raise DestinationError(
            f"url must be an absolute https URL of at most {MAX_URL_LENGTH} characters", code
        )
    try:
        u = URL(url)
        host = u.raw_host
        port = u.port
    except (ValueError, UnicodeError):
        raise DestinationError("url is not a valid URL", code) from None
    schemes = ("https", "http") if allow_http else ("https",)
    if u.scheme not in schemes:
        raise DestinationError(
            "url must be an https URL" if not allow_http else "url must be an http(s) URL", code
        )
    if not host or port is None:
        raise DestinationError("url needs a host", code)
    if u.raw_user is not None or u.raw_password is not None:
        raise DestinationError("url must not carry credentials", code)
    return Destination(u.scheme, host.lower().rstrip("."), port, _path_qs(url))


def _path_qs(url: str) -> str:
    """Path and query exactly as given (a parser would normalise ``%2F`` and the like, and a
    receiver may sign or route on them), non-ASCII percent-encoded, without the fragment."""
    after = url.split("://", 1)[1]
    cut = min((i for i in (after.find(c) for c in "/?#") if i >= 0), default=len(after))
    tail = after[cut:].split("#", 1)[0]
    tail = quote(tail, safe=_PRINTABLE_ASCII)
    return tail if tail.startswith("/") else "/" + tail


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to (mapped, 6to4, Teredo, NAT64)."""
    out = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo:
        out.extend(ip.teredo)
    if ip in _NAT64:
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def refusal(ip: IP, allow_private: bool) -> str | None:
    """Why the node must not connect to ``ip`` (None: it may). Multicast and the unspecified address
    are never a destination; the rest of the non-public space only with ``allow_private``."""
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    embedded = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    if embedded:  # the traffic goes to the IPv4 address: it decides
        return next((r for r in (refusal(a, allow_private) for a in embedded) if r), None)
    if allow_private:
        return None
    for reason, hit in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-public", not ip.is_global),
    ):
        if hit:
            return reason
    return None


async def resolve(dest: Destination, allow_private: bool, timeout_s: float = 5.0) -> list[str]:
    """The addresses to connect to, all of them allowed; DestinationError if any is not (a name that
    resolves to a public and a private address is refused), or if the name does not resolve."""
    literal = dest.ip
    if literal is not None:
        addresses: list[IP] = [literal]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(dest.host, dest.port, type=socket.SOCK_STREAM), timeout_s
            )
        except (OSError, TimeoutError):
            raise DestinationError(f"{dest.host} does not resolve", "destination_unresolvable") from None
        addresses = []
        for info in infos:
            a = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if a not in addresses:
                addresses.append(a)
        if not addresses:
            raise DestinationError(f"{dest.host} does not resolve", "destination_unresolvable")
    for a in addresses:
        reason = refusal(a, allow_private)
        if reason:
            where = "is" if literal is not None else "resolves to"
            raise DestinationError(f"{dest.host} {where} a {reason} address", "destination_not_allowed")
    return [str(a) for a in addresses]
