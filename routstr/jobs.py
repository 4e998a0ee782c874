"""The node's background jobs, and which of them run once per fleet.

Jobs that move money (the reservation sweep, swap recovery, the invoice watcher, key expiry, the
earnings payout) run in the one process of a fleet that holds the job's lease in the database; the
others keep per-process state (mint health, model lists, the renewal of this process's running
requests' reservations) and run everywhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from routstr.billing.leases import LeaseRenewer
from routstr.config import Settings
from routstr.core.ids import PROCESS
from routstr.discovery.publisher import CHECK_EVERY_S, publisher_for
from routstr.limits import LimitPolicy
from routstr.node import Node
from routstr.storage import accounts, leases, limit_overrides
from routstr.upstream.managed import ManagedCatalogue
from routstr.wallet.expiry import pay_out_expired
from routstr.wallet.recovery import recover_pending
from routstr.wallet.withdraw_lightning import auto_payout
from routstr.webhooks import events as webhook_events
from routstr.webhooks.delivery import deliver_due, policy_from

log = logging.getLogger(__name__)

SWEEP_EVERY_S = 30.0
RECOVER_EVERY_S = 60.0
EXPIRY_EVERY_S = 30.0
PAYOUT_EVERY_S = 60.0
LIMITS_EVERY_S = 30.0

Job = Callable[[], Awaitable[None]]


async def _guarded(job: str, run: Job) -> None:
    try:
        await run()
    except Exception:
        log.exception("background job %s failed", job)


async def every(seconds: float, job: str, run: Job) -> None:
    """Run ``run`` now and then every ``seconds``; a failure is logged and the next round still runs."""
    while True:
        await _guarded(job, run)
        await asyncio.sleep(seconds)


def once_per_fleet(node: Node, seconds: float, job: str, run: Job) -> Job:
    """``run``, but only in the process holding the job's lease (taken over if its holder stops)."""

    async def leased() -> None:
        if await leases.hold(node.db, "job:" + job, PROCESS, ttl_s=3 * seconds):
            await run()

    return leased


def recovers_at_once(settings: Settings) -> bool:
    """May the start-up recovery touch swaps of any age? Only when no other process can have one in
    flight: a single process on SQLite. (``serve --workers`` runs that pass before starting workers.)"""
    return settings.database_url.startswith("sqlite") and not settings.worker


async def reload_limits(node: Node) -> bool:
    """The per-key rate limits as stored (set through another process of the fleet), in a new runtime
    snapshot if they changed. A change applied in this process while they were read is newer than
    what was read: it is kept (the next round reads it back). True when replaced."""
    before = node.runtime.current.limits
    overrides = await limit_overrides.load(node.db)
    now = node.runtime.current.limits
    if now is not before or overrides == now.overrides:
        return False
    node.runtime.replace(limits=LimitPolicy(now.default, overrides))
    return True


def start_jobs(
    settings: Settings, node: Node, managed: ManagedCatalogue | None = None
) -> list[asyncio.Task[None]]:
    db = node.db

    async def sweep() -> None:
        await db.ledger.release_expired(accounts.now_ms())

    async def recover() -> None:
        counts = await recover_pending(db, node.mints)
        if counts:
            log.info("swap recovery: %s", counts)

    async def recover_at_start() -> None:
        counts = await recover_pending(db, node.mints, min_age_s=0)
        if counts:
            log.info("start-up recovery: %s", counts)

    async def watch_invoices() -> None:
        counts = await node.invoices.settle_all()
        if counts.get("settled"):
            log.info("invoice watcher: %s", counts)

    async def expire_keys() -> None:
        counts = await pay_out_expired(db, node.payouts)
        if counts:
            log.info("key expiry: %s", counts)

    async def pay_earnings() -> None:
        p = await auto_payout(
            db,
            node.payouts,
            node.mints.primary,
            settings.receive_ln_address,
            settings.receive_ln_threshold_sats,
        )
        if p is not None:
            log.info("earnings payout to RECEIVE_LN_ADDRESS: %s, %d sat, fee %d", p.state, p.amount, p.fee)

    async def check_webhooks() -> None:
        counts = await webhook_events.check(db)
        if counts:
            log.info("webhook events: %s", counts)

    webhook_policy = policy_from(settings)

    async def deliver_webhooks() -> None:  # on the node's pooled session
        counts = await deliver_due(db, node.payouts.session, node.auth.secret, webhook_policy)
        if set(counts) - {"delivered", "skipped"}:
            log.info("webhook deliveries: %s", counts)

    fleet: list[tuple[float, str, Job]] = [
        (min(SWEEP_EVERY_S, settings.reservation_ttl_s / 2), "reservation sweep", sweep),
        (RECOVER_EVERY_S, "swap recovery", recover),
        (settings.invoice_watch_s, "invoice watcher", watch_invoices),
        (EXPIRY_EVERY_S, "key expiry", expire_keys),
        (settings.webhook_check_s, "webhook check", check_webhooks),
        (settings.webhook_deliver_s, "webhook delivery", deliver_webhooks),
    ]
    if settings.receive_ln_address:
        fleet.append((PAYOUT_EVERY_S, "earnings payout", pay_earnings))
    key = node.nostr
    announcer = publisher_for(settings, key, node.mints.urls, node.payouts.session) if key else None
    if announcer is not None:  # RELAYS set: announce the node on Nostr (published at once, renewed daily)
        fleet.append((CHECK_EVERY_S, "nostr announcement", announcer.publish_due))
    tasks = [
        asyncio.create_task(every(s, name, once_per_fleet(node, s, name, run))) for s, name, run in fleet
    ]
    if recovers_at_once(settings):  # not leased: a crashed holder's lease must not delay this pass
        tasks.append(asyncio.create_task(_guarded("start-up recovery", recover_at_start)))

    async def refresh_limits() -> None:
        await reload_limits(node)

    tasks.append(asyncio.create_task(every(LIMITS_EVERY_S, "rate-limit overrides", refresh_limits)))
    # per process, not leased: each process renews the reservations of its own running requests
    tasks.append(asyncio.create_task(LeaseRenewer(node.pipeline).run()))
    tasks.append(asyncio.create_task(every(settings.mint_health_s, "mint health", node.mints.check_health)))
    tasks.append(asyncio.create_task(node.catalogue.refresh_forever()))
    if managed is not None:  # providers and model settings changed by another process of the fleet
        sync = managed.sync

        async def sync_catalogue() -> None:
            await sync()

        tasks.append(asyncio.create_task(every(settings.catalogue_sync_s, "catalogue sync", sync_catalogue)))
    return tasks
