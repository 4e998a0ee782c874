"""The outbound policy for URLs a user chose, and a client session that enforces it as it connects.

Lightning addresses, LNURLs and their callbacks, and foreign mints named in tokens are all URLs
someone outside the node picked. ``OutboundPolicy.check`` says before a call whether a URL may be
called (its scheme, and every address its host resolves to: ``routstr.net.addresses``), so the
caller can answer in its own words. ``OutboundPolicy.session`` checks again while it connects: its
resolver refuses a name that resolves to a refused address and hands the connector only the
addresses it checked (a DNS answer that changes after the first check cannot slip past), a
middleware refuses address literals the policy does not allow (they are never resolved), and no
redirect is followed. Private destinations (loopback, the LAN) are reachable only when the operator
names them (``private_hosts``): tests, local demos, an operator's own server on its network.
"""

from __future__ import annotations

import ipaddress
import socket
from contextlib import suppress
from dataclasses import dataclass

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from routstr.net.addresses import Destination, DestinationError, parse_url, refusal, resolve

ANY_HOST = "*"
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
_FALSE, _TRUE = ("", "0", "false", "no", "off"), ("1", "true", "yes", "on", ANY_HOST)


def private_hosts(raw: str) -> tuple[str, ...]:
    """A setting such as ``LNURL_ALLOW_PRIVATE``: false or empty (no private destination), true (any:
    local tests and demos), or a comma list of ``host`` / ``host:port`` as written in URLs (an
    operator's own server on its network). Raises ValueError saying what is wrong."""
    value = raw.strip()
    if value.lower() in _FALSE:
        return ()
    if value.lower() in _TRUE:
        return (ANY_HOST,)
    return tuple(dict.fromkeys(_entry(e) for e in value.split(",") if e.strip()))


def _entry(entry: str) -> str:
    e = entry.strip()
    with suppress(ValueError):
        return _host_key(str(ipaddress.ip_address(e)), None)  # a bare IPv6 address has colons
    try:
        u = URL("http://" + e)
        host, port = u.raw_host, u.explicit_port
    except (ValueError, UnicodeError):
        host, port = None, None
    if not host or u.raw_path not in ("", "/") or u.raw_query_string or u.raw_user or port == 0:
        raise ValueError(f"{e!r} is not a host or host:port (e.g. 127.0.0.1:8080 or lnbits.lan)")
    return _host_key(host, port)


def _host_key(host: str, port: int | None) -> str:
    host = host.lower().rstrip(".")
    with suppress(ValueError):
        host = ipaddress.ip_address(host).compressed
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


class Refused(OSError):
    """A connection the policy refused, raised in the session's resolver (aiohttp wraps it in a
    ``ClientConnectorDNSError``): nothing was sent."""

    def __init__(self, error: DestinationError) -> None:
        super().__init__(error.message)
        self.error = error


class RefusedURL(aiohttp.InvalidURL):
    """A request the policy refused before connecting (an address literal, a scheme): nothing was sent."""

    def __init__(self, url: URL, error: DestinationError) -> None:
        super().__init__(url.origin(), error.message)
        self.error = error


def refused(exc: BaseException | None) -> DestinationError | None:
    """The policy's refusal behind an error of a guarded call (also when wrapped), or None."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, RefusedURL | Refused):
            return exc.error
        if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, Refused):
            return exc.os_error.error
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Where calls to user-chosen URLs may go: https only unless ``allow_http``; public addresses
    only, except the hosts of ``allow_private`` (``private_hosts``; ``("*",)`` allows any)."""

    allow_http: bool = False
    allow_private: tuple[str, ...] = ()

    def private_ok(self, host: str, port: int) -> bool:
        allowed = self.allow_private
        return ANY_HOST in allowed or _host_key(host, None) in allowed or _host_key(host, port) in allowed

    def destination(self, url: str) -> Destination:
        """The URL's scheme and shape checked (no lookup); raises DestinationError."""
        return parse_url(url, self.allow_http)

    async def check(self, url: str, timeout_s: float = 5.0) -> Destination:
        """The URL checked, and every address its host resolves to now; raises DestinationError
        (``destination_not_allowed``, ``destination_unresolvable``, ``invalid_url``)."""
        dest = self.destination(url)
        await resolve(dest, self.private_ok(dest.host, dest.port), timeout_s)
        return dest

    def session(self, timeout_s: float = 15.0) -> aiohttp.ClientSession:
        """A client session that reaches only what this policy allows (create it in a running loop;
        close it after use). Its refusals are ``Refused`` / ``RefusedURL``, see ``refused``."""
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=_Resolver(self, timeout_s), use_dns_cache=False),
            middlewares=(self._guard,),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    async def _guard(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Every request (redirects would be too): its scheme, and its host if an address literal."""
        try:
            dest = self.destination(str(req.url))
            ip = dest.ip
            reason = refusal(ip, self.private_ok(dest.host, dest.port)) if ip is not None else None
            if reason:
                raise DestinationError(f"{dest.host} is a {reason} address", "destination_not_allowed")
        except DestinationError as e:
            raise RefusedURL(req.url, e) from None
        resp = await handler(req)
        if 300 <= resp.status < 400:  # never followed: the next hop was never checked
            resp.release()
            raise aiohttp.ClientResponseError(
                resp.request_info, (), status=resp.status, message="redirect not followed"
            )
        return resp


class _Resolver(AbstractResolver):
    """Host names of the guarded session resolve only to addresses the policy allows."""

    def __init__(self, policy: OutboundPolicy, timeout_s: float) -> None:
        self._policy, self._timeout_s = policy, timeout_s

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        dest = Destination("https", host.lower().rstrip("."), port, "/")
        try:
            found = await resolve(dest, self._policy.private_ok(dest.host, port), self._timeout_s)
        except DestinationError as e:
            raise Refused(e) from None
        return [
            ResolveResult(
                hostname=host,
                host=a,
                port=port,
                family=socket.AF_INET6 if ":" in a else socket.AF_INET,
                proto=0,
                flags=_NUMERIC,
            )
            for a in found
        ]

    async def close(self) -> None:
        return None
