"""Who may use the dashboard: the operator's password, a session cookie, CSRF checks, login limits.

* The password is ``ADMIN_PASSWORD`` the first time the node starts; from then on its scrypt hash in
  the database is what counts (changeable on the settings page, or ``routstr admin-password``;
  ``routstr.operator.password``).
* A login sets a random cookie (HttpOnly, SameSite=Strict, Path=/admin, Secure over HTTPS); the
  database keeps only its HMAC, so a fleet shares sessions and a leaked table logs nobody in.
* Every form that changes something carries a CSRF token derived from the cookie (HMAC, nothing
  stored), and a cross-site ``Origin`` is refused outright.
* Logins back off per client address (``TRUSTED_PROXIES`` decides whether ``X-Forwarded-For``
  names it): five attempts at once, then 1 s, 2 s, 4 s … at most 5 minutes between attempts, until a
  success. Never a lockout, and never a wait for another address: no count is shared by everyone, so
  nobody else's failures can keep the operator out. The records sit beside the rate limiter's
  counters (in memory, or fleet-wide in Redis).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from routstr.limits.backoff import Backoff, BackoffPolicy
from routstr.limits.by_address import address_group, backoff_for
from routstr.net.client_address import client_address
from routstr.node import NODE, Node
from routstr.operator import password as operator_password
from routstr.storage import admin_sessions
from routstr.storage.accounts import now_ms

COOKIE = "routstr_admin"
LOGIN_BACKOFF = BackoffPolicy(free=5, base_s=1.0, max_s=300.0, forget_s=3600.0)


def _hmac(secret: bytes, label: str, value: str) -> str:
    return hmac.new(secret, f"{label}:{value}".encode(), hashlib.sha256).hexdigest()


def session_hash(secret: bytes, cookie: str) -> str:
    return _hmac(secret, "admin-session", cookie)


def csrf_token(secret: bytes, cookie: str) -> str:
    return _hmac(secret, "admin-csrf", cookie)[:40]


def _login_backoff(request: web.Request) -> tuple[Backoff, str]:
    node = request.app[NODE]
    who = address_group(client_address(request, node.settings.trusted_proxies))
    return backoff_for(node.pipeline.limiter, "login", LOGIN_BACKOFF), who


async def login_allowed(request: web.Request) -> int | None:
    """None if this attempt may check the password now (it counts as a failure until
    :func:`login_succeeded`), else the seconds its client address must wait."""
    backoff, who = _login_backoff(request)
    wait = await backoff.attempt(who)
    return wait or None


async def login_succeeded(request: web.Request) -> None:
    """The right password: the client's address starts afresh."""
    backoff, who = _login_backoff(request)
    await backoff.forget(who)


def _ttl_ms(node: Node) -> int:
    return int(node.settings.admin_session_hours * 3_600_000)


def _secure(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


async def start_session(request: web.Request, response: web.StreamResponse) -> None:
    node = request.app[NODE]
    cookie = secrets.token_urlsafe(32)
    async with node.db.write() as conn:
        await admin_sessions.purge_expired(conn, now_ms())
        await admin_sessions.create(conn, session_hash(node.auth.secret, cookie), now_ms(), _ttl_ms(node))
    response.set_cookie(
        COOKIE,
        cookie,
        path="/admin",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        max_age=int(_ttl_ms(node) / 1000),
    )


async def current_cookie(request: web.Request) -> str | None:
    """The request's session cookie if it names a live session."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    node = request.app[NODE]
    async with node.db.write() as conn:
        ok = await admin_sessions.use(conn, session_hash(node.auth.secret, cookie), now_ms(), _ttl_ms(node))
    return cookie if ok else None


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    cookie = request.cookies.get(COOKIE)
    if cookie:
        node = request.app[NODE]
        async with node.db.write() as conn:
            await admin_sessions.end(conn, session_hash(node.auth.secret, cookie))
    response.del_cookie(COOKIE, path="/admin")


async def change_password(node: Node, cookie: str, new_password: str) -> int:
    """Store the new hash and log out every other session; returns how many were ended."""
    return await operator_password.change_password(node, new_password, session_hash(node.auth.secret, cookie))


def same_origin(request: web.Request) -> bool:
    """A browser's ``Origin`` (or ``Referer``) on a form post must be this host."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin is None:
        return True  # no header (an old client): the CSRF token alone decides
    return urlsplit(origin).netloc == request.host  # "null" (a sandboxed page) has none: refused


def csrf_ok(request: web.Request, cookie: str, sent: str | None) -> bool:
    secret = request.app[NODE].auth.secret
    return bool(sent) and hmac.compare_digest(str(sent), csrf_token(secret, cookie)) and same_origin(request)
