"""Keeping the announcement on every relay: published at start, renewed every 24 h, retried with
backoff after a failure, never in the way of start-up or requests (it runs as a background job).

The schedule is plain state over an injected clock. ``Publisher.publish_due`` is what the job runs,
in the one process of a fleet that holds the job's lease (``routstr/jobs.py``). A process that takes
the lease over publishes at once, not knowing when the last holder did: harmless, since relays keep
only the newest event of a replaceable kind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from routstr import __version__
from routstr.discovery.announcement import KIND, Listing, build_event
from routstr.discovery.keys import NostrKey
from routstr.discovery.relay import RelayError, publish, shown

log = logging.getLogger(__name__)

RENEW_S = 24 * 3600.0
RETRY_FIRST_S = 30.0  # then doubled after each failure in a row
RETRY_MAX_S = 3600.0
TIMEOUT_S = 10.0  # connect, send and the relay's OK, per relay
CHECK_EVERY_S = 30.0  # how often the job looks for a relay that is due (the backoff's granularity)


def retry_delay(failures: int) -> float:
    """The wait after ``failures`` failed attempts in a row: 30 s, 60 s, 120 s, … at most an hour."""
    return float(min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(max(failures, 1) - 1, 20)))


@dataclass
class RelaySchedule:
    """When one relay is next due; a new one is due at once."""

    next_at: float = 0.0
    failures: int = 0  # in a row, since the last success

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def succeeded(self, now: float) -> None:
        self.failures = 0
        self.next_at = now + RENEW_S

    def failed(self, now: float) -> float:
        self.failures += 1
        delay = retry_delay(self.failures)
        self.next_at = now + delay
        return delay


class Publisher:
    """Publishes the node's announcement to each relay when it is due."""

    def __init__(
        self,
        relays: tuple[str, ...],
        listing: Listing,
        key: NostrKey,
        session: aiohttp.ClientSession,
        clock: Callable[[], float] = time.time,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.listing = listing
        self.key = key
        self.session = session
        self.clock = clock
        self.timeout_s = timeout_s
        self.schedule = {url: RelaySchedule() for url in relays}

    async def publish_due(self) -> None:
        """One round: a freshly signed event (created now) to every relay that is due, at once."""
        now = self.clock()
        due = [url for url, s in self.schedule.items() if s.due(now)]
        if not due:
            return
        event = build_event(self.listing, self.key, int(now))
        await asyncio.gather(*(self._publish_to(url, event, now) for url in due))

    async def _publish_to(self, url: str, event: dict[str, Any], now: float) -> None:
        schedule = self.schedule[url]
        try:
            await publish(self.session, url, event, self.timeout_s)
        except RelayError as e:
            delay = schedule.failed(now)
            log.warning(
                "nostr announcement not stored on %s: %s (attempt %d; next in %d s)",
                shown(url),
                e,
                schedule.failures,
                delay,
            )
            return
        schedule.succeeded(now)
        log.info("nostr announcement (kind %d, id %s) stored on %s", KIND, event["id"], shown(url))


class AnnouncedSettings(Protocol):
    """What the announcement reads of the node's settings (``config.Settings`` has them): discovery
    does not import config, which imports discovery (``NSEC``'s parser)."""

    @property
    def relays(self) -> tuple[str, ...]: ...
    @property
    def provider_id(self) -> str: ...
    @property
    def http_url(self) -> str: ...
    @property
    def onion_url(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...


def publisher_for(
    settings: AnnouncedSettings, key: NostrKey, mints: tuple[str, ...], session: aiohttp.ClientSession
) -> Publisher | None:
    """The node's publisher, or None when RELAYS is empty (then no connection is ever made)."""
    if not settings.relays:
        return None
    if not settings.http_url and not settings.onion_url:
        log.warning("RELAYS is set, HTTP_URL and ONION_URL are not: the announcement names no address")
    listing = Listing(
        provider_id=settings.provider_id,
        http_url=settings.http_url,
        onion_url=settings.onion_url,
        mints=mints,
        version=__version__,
        name=settings.name,
        about=settings.description,
    )
    return Publisher(settings.relays, listing, key, session)
