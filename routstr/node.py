"""The composition root: the node's long-lived parts, built once from its settings and wired together.

``build_node`` makes every part (database, mints, wallet, pipeline, catalogue, rates) and hands them
over as one ``Node``; ``build_managed`` adds the providers and model settings managed at run time.
What can change while the node runs (providers, aliases, prices, switched-off models, per-key rate
limits) is one snapshot in ``Node.runtime`` (``upstream/runtime.py``), replaced whole on a change. The
application factory (``app.py``) runs them in aiohttp's lifecycle and reaches them through ``NODE``
and ``MANAGED``; the operator's functions (``routstr.operator``) take the ``Node``. Nothing here
serves HTTP, and nothing happens at import time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from routstr.billing.auth import Authenticator
from routstr.billing.pipeline import Pipeline
from routstr.billing.xcashu import XCashu
from routstr.config import Settings
from routstr.discovery.keys import NostrKey, node_key
from routstr.limits import LimitPolicy, Limits, make_limiter
from routstr.metrics.counters import NodeMetrics
from routstr.rates.feed import BtcUsdFeed
from routstr.storage.db import Database
from routstr.storage.node_secret import load_node_secret
from routstr.upstream.breaker import Breaker
from routstr.upstream.catalogue import Catalogue
from routstr.upstream.client import Upstream
from routstr.upstream.managed import ManagedCatalogue, effective
from routstr.upstream.providers import Provider
from routstr.upstream.runtime import Runtime, RuntimeHolder
from routstr.upstream.spec import ProviderSpec
from routstr.wallet.identity_upgrade import upgrade_token_identities
from routstr.wallet.lightning_in import Invoices
from routstr.wallet.lightning_out import Payouts
from routstr.wallet.mints import ForeignMintPolicy, MintRegistry
from routstr.wallet.redeem import Redeemer
from routstr.wallet.redeem_gate import RedeemGate
from routstr.wallet.refund import Refunder


@dataclass
class Node:
    settings: Settings
    db: Database
    mints: MintRegistry
    redeemer: Redeemer
    refunder: Refunder
    auth: Authenticator
    catalogue: Catalogue
    runtime: RuntimeHolder  # the current snapshot of providers, aliases, prices, limits
    pipeline: Pipeline
    rates: BtcUsdFeed
    xcashu: XCashu
    invoices: Invoices
    payouts: Payouts
    nostr: NostrKey | None = None  # the node's Nostr key (build_node always sets it)

    @property
    def providers(self) -> Sequence[Provider]:
        """The providers in rotation now (for views: a request reads its own snapshot's)."""
        return self.runtime.current.providers


NODE: web.AppKey[Node] = web.AppKey("node", Node)
MANAGED: web.AppKey[ManagedCatalogue] = web.AppKey("managed_catalogue", ManagedCatalogue)


async def build_node(
    settings: Settings, session: aiohttp.ClientSession, db: Database, counters: NodeMetrics | None = None
) -> Node:
    secret = await load_node_secret(db, settings)
    await upgrade_token_identities(db, secret)  # once per database (issue 14)
    foreign = None
    if settings.foreign_mint_max_sats > 0:
        daily = settings.foreign_mint_daily_sats or 10 * settings.foreign_mint_max_sats
        foreign = ForeignMintPolicy(
            settings.foreign_mint_max_sats,
            daily,
            settings.foreign_mint_allow_http,
            settings.foreign_mint_allow_private,
        )
    exposure = settings.mint_max_exposure_sats * 1000
    mints = MintRegistry(settings.cashu_mints, session, settings.mint_timeout_s, exposure, foreign)
    # one limiter for keys, X-Cashu and redemptions: in memory, or shared by the fleet through Redis
    limiter = make_limiter(settings.redis_url or None, settings.redis_prefix)
    redeemer = Redeemer(db, mints, secret, RedeemGate(limiter, settings.redeem_limit_per_address))
    auth = Authenticator(db, mints, redeemer, secret)
    rates = BtcUsdFeed(
        settings.btc_usd_sources,
        session,
        refresh_s=settings.btc_usd_refresh_s,
        max_age_s=settings.btc_usd_max_age_s,
        pinned=settings.btc_usd_price,
    )
    default_limits = Limits(
        settings.rate_limit_requests_per_minute,
        settings.rate_limit_tokens_per_hour,
        settings.rate_limit_concurrent,
    )
    runtime = RuntimeHolder(
        Runtime(
            1,
            tuple(new_provider(settings, spec) for spec in settings.providers),
            effective(settings.providers, settings.aliases, settings.prices, (), ()),  # the files' alone
            LimitPolicy(default_limits),
        )
    )
    catalogue = Catalogue(
        settings.prices,
        rates.rate,
        settings.default_max_output_tokens,
        settings.image_input_tokens,
        settings.min_fitted_max_tokens,
        runtime,
    )
    refunder = Refunder(db, mints)
    xcashu = XCashu(db, mints, redeemer, refunder, secret)
    pipeline = Pipeline(
        db,
        auth,
        catalogue,
        settings.max_body_bytes,
        settings.reservation_ttl_s,
        xcashu,
        settings.missing_key_status,
        limiter,
        counters or NodeMetrics(),
        (
            Limits(settings.xcashu_limit_per_address, 0, 0),
            Limits(settings.xcashu_limit_total, 0, 0),
        ),
        settings.trusted_proxies,
    )
    pipeline.relay.btc_usd = catalogue.btc_usd_now  # usage.cost.total_usd
    invoices = Invoices(db, mints, secret)
    payouts = Payouts(db, mints, session, settings.lnurl_allow_http, settings.lnurl_allow_private)
    return Node(
        settings,
        db,
        mints,
        redeemer,
        refunder,
        auth,
        catalogue,
        runtime,
        pipeline,
        rates,
        xcashu,
        invoices,
        payouts,
        nostr=node_key(settings.nsec, secret),
    )


def build_managed(settings: Settings, node: Node) -> ManagedCatalogue:
    """The providers and model settings stored through the admin API, laid over the files' into the
    node's runtime snapshot (call ``reload()`` to apply what is stored)."""
    return ManagedCatalogue(
        node.db,
        node.auth.secret,
        node.catalogue,
        functools.partial(new_provider, settings),
        settings.providers,
        settings.aliases,
        settings.prices,
        node.rates,
    )


def pooled_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
    )


def new_provider(settings: Settings, spec: ProviderSpec) -> Provider:
    """A provider with its own pooled client (a slow one cannot starve the others) and breaker."""
    client = Upstream(
        spec.base_url,
        spec.api_key,
        pooled_session(),
        settings.upstream_connect_timeout_s,
        settings.upstream_read_timeout_s,
        spec.kind,
        settings.upstream_total_timeout_s,
    )
    return Provider(spec, client, Breaker(settings.provider_failures_to_open, settings.provider_cooldown_s))


def needs_live_rate(settings: Settings) -> bool:
    """Fetch BTC/USD only if some price is in USD and no rate is pinned (offline nodes stay offline)."""
    specs = [settings.prices.default, *settings.prices.models.values()]
    return settings.btc_usd_price is None and any(s.currency == "usd" for s in specs)
