"""Sending the outbox: signed POSTs, retried with backoff, given up after the last attempt.

Once per fleet, every ``WEBHOOK_DELIVER_SECONDS``, the due deliveries are claimed (one sender each)
and sent at once, each with its own short timeout. A 2xx answer is delivered; anything else (another
status, a redirect, which is never followed, a timeout, a refused destination) is a failed attempt.
The destination is checked again before every attempt and the connection goes to the address that
was checked. Nothing of the URL or the secret reaches logs or ``last_error``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp

from routstr import __version__
from routstr.config import DEFAULTS, Settings
from routstr.core.sealed import SealError, unseal
from routstr.storage import webhook_store as store
from routstr.storage.accounts import now_ms
from routstr.storage.db import Database
from routstr.webhooks.backoff import retry_delay_s
from routstr.webhooks.destinations import DestinationError, parse_url, resolve
from routstr.webhooks.signing import signature

log = logging.getLogger(__name__)

SECRET_PURPOSE = "webhook-secret"  # the sealing label of webhook secrets (core/sealed.py)
CLAIM_MARGIN_MS = 30_000  # a claimed delivery whose sender died is due again this long after its timeout


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    allow_private: bool = DEFAULTS.webhook_allow_private
    allow_http: bool = DEFAULTS.webhook_allow_http
    timeout_s: float = DEFAULTS.webhook_timeout_s
    retry_base_s: float = DEFAULTS.webhook_retry_base_s
    retry_max_s: float = DEFAULTS.webhook_retry_max_s
    max_attempts: int = DEFAULTS.webhook_max_attempts
    batch: int = 100  # deliveries sent at once per round


async def _post(
    session: aiohttp.ClientSession, d: store.DueDelivery, node_secret: bytes, policy: DeliveryPolicy
) -> str | None:
    """One attempt; None if delivered, otherwise what went wrong (no URL, no secret in it)."""
    try:
        dest = parse_url(d.url, policy.allow_http)
        addresses = await resolve(dest, policy.allow_private, policy.timeout_s)
        secret = unseal(node_secret, SECRET_PURPOSE, d.secret_sealed)
    except DestinationError as e:
        return e.message
    except SealError:
        return "the webhook's secret does not open with this node's secret (was SECRET_KEY changed?)"
    body = d.payload.encode()
    headers = {
        "Host": dest.host_header,
        "Content-Type": "application/json",
        "User-Agent": f"routstr/{__version__} webhooks",
        "X-Webhook-Id": d.event_id,
        "X-Webhook-Event": d.event,
        "X-Webhook-Timestamp": str(int(time.time())),
        "X-Webhook-Signature": signature(secret, body),
    }
    tls_name = dest.host if dest.scheme == "https" and dest.ip is None else None
    error = "connection failed"
    for address in addresses:  # the next one only if this one could not be reached at all
        try:
            async with session.post(
                dest.url_for(address),
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=policy.timeout_s),
                server_hostname=tls_name,
            ) as r:
                return None if 200 <= r.status < 300 else f"HTTP {r.status}"
        except aiohttp.ClientConnectorError as e:
            error = f"connection failed ({type(e).__name__})"
        except TimeoutError:
            return f"no answer within {policy.timeout_s:g} s"
        except aiohttp.ClientError as e:
            return f"request failed ({type(e).__name__})"
    return error


async def _deliver(
    db: Database,
    session: aiohttp.ClientSession,
    node_secret: bytes,
    policy: DeliveryPolicy,
    d: store.DueDelivery,
) -> str:
    attempt = d.attempts + 1
    async with db.write() as conn:
        claimed = await store.claim(conn, d, now_ms() + int(policy.timeout_s * 2000) + CLAIM_MARGIN_MS)
    if not claimed:
        return "skipped"  # another sender has it
    error = await _post(session, d, node_secret, policy)
    now = now_ms()
    async with db.write() as conn:
        if error is None:
            await store.delivered(conn, d.id, now)
            return "delivered"
        if attempt >= policy.max_attempts:
            await store.failed(conn, d.id, error, None, now)
            log.warning(
                "webhook %s: gave up on event %s after %d attempts", d.webhook_id, d.event_id, attempt
            )
            return "gave_up"
        delay_ms = int(retry_delay_s(attempt, policy.retry_base_s, policy.retry_max_s) * 1000)
        await store.failed(conn, d.id, error, now + delay_ms, now)
    log.info("webhook %s: event %s attempt %d failed: %s", d.webhook_id, d.event_id, attempt, error)
    return "retry"


async def deliver_due(
    db: Database, session: aiohttp.ClientSession, node_secret: bytes, policy: DeliveryPolicy
) -> dict[str, int]:
    """Send every delivery that is due now (up to ``policy.batch``); counts by outcome."""
    async with db.read() as conn:
        due = await store.due(conn, now_ms(), policy.batch)
    outcomes = await asyncio.gather(
        *(_deliver(db, session, node_secret, policy, d) for d in due), return_exceptions=True
    )
    for o in outcomes:
        if isinstance(o, BaseException):
            log.error("webhook delivery failed", exc_info=o)
    return dict(Counter(o if isinstance(o, str) else "error" for o in outcomes))


def policy_from(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        allow_private=settings.webhook_allow_private,
        allow_http=settings.webhook_allow_http,
        timeout_s=settings.webhook_timeout_s,
        retry_base_s=settings.webhook_retry_base_s,
        retry_max_s=settings.webhook_retry_max_s,
        max_attempts=settings.webhook_max_attempts,
    )
