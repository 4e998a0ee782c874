"""The heartbeat of running requests: a reservation is a lease, renewed while its request runs.

A reservation expires ``RESERVATION_TTL_SECONDS`` after it is taken or last renewed, and the fleet's
sweep gives back expired ones. A stream may last longer than any TTL (a slow client can keep one
open indefinitely), so every ``ttl / 3`` each process pushes the expiry of its own running requests
(``Pipeline.live``): one statement per batch, never on the hot path. A process that dies stops
renewing, and the sweep gives its reservations back once their lease runs out. Two renewals may fail
in a row before a live request's lease lapses.
"""

from __future__ import annotations

import asyncio
import logging

from routstr.billing.pipeline import Pipeline
from routstr.storage.accounts import now_ms
from routstr.storage.hot_ledger import RENEW_MAX

log = logging.getLogger(__name__)

RENEWALS_PER_TTL = 3


class LeaseRenewer:
    """Renews the reservations of ``pipeline.live`` every ``ttl / 3`` for as long as it runs."""

    def __init__(self, pipeline: Pipeline, batch: int = RENEW_MAX) -> None:
        self.pipeline = pipeline
        self.batch = min(batch, RENEW_MAX)
        self.period_s = pipeline.reservation_ttl_ms / 1000 / RENEWALS_PER_TTL
        self._failing = False

    async def renew(self) -> int:
        """Renew every live reservation now; how many were still there."""
        live = self.pipeline.live
        refs = list(live)  # requests start and end while the batches are written
        renewed = 0
        for i in range(0, len(refs), self.batch):
            chunk = refs[i : i + self.batch]
            expires_at = now_ms() + self.pipeline.reservation_ttl_ms
            n = await self.pipeline.db.ledger.renew(chunk, expires_at)
            # a request settled meanwhile has left ``live``; one still in it must have had its row
            lost = sum(1 for ref in chunk if ref in live) - n
            if lost > 0:
                log.warning(
                    "%d running request(s) had lost their reservation to the sweep before renewal "
                    "(is the database too slow for RESERVATION_TTL_SECONDS?)",
                    lost,
                )
            renewed += n
        return renewed

    async def run(self) -> None:
        """Renew forever; a failed round is logged and the next one still runs."""
        while True:
            await asyncio.sleep(self.period_s)
            try:
                await self.renew()
            except Exception as e:
                log.warning(
                    "reservation lease renewal failed (%r); %d running request(s) may be swept if it "
                    "keeps failing; retrying in %.1f s",
                    e,
                    len(self.pipeline.live),
                    self.period_s,
                )
                self._failing = True
            else:
                if self._failing:
                    log.info("reservation lease renewal works again")
                    self._failing = False
