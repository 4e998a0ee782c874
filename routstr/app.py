"""The application factory: builds the node from its settings. Nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

import aiohttp
import aiohttp_cors
from aiohttp import web

from routstr.admin import views as dashboard
from routstr.admin.session import store_first_password
from routstr.api import (
    admin,
    admin_access,
    admin_catalogue,
    admin_keys,
    balance,
    child_keys,
    docs,
    health,
    info,
    lightning,
    llm,
    metrics,
)
from routstr.api import webhooks as webhook_routes
from routstr.api.admin_catalogue import MANAGED
from routstr.api.middleware import envelope_parse_errors, request_context
from routstr.api.state import NODE, Node
from routstr.billing.auth import Authenticator
from routstr.billing.pipeline import Pipeline
from routstr.billing.xcashu import XCashu
from routstr.config import Settings
from routstr.discovery.keys import node_key
from routstr.jobs import start_jobs
from routstr.limits import LimitPolicy, Limits, make_limiter
from routstr.metrics.counters import METRICS, NodeMetrics
from routstr.rates.feed import BtcUsdFeed
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from routstr.storage.node_secret import load_node_secret
from routstr.upstream.breaker import Breaker
from routstr.upstream.catalogue import Catalogue
from routstr.upstream.client import Upstream
from routstr.upstream.managed import ManagedCatalogue
from routstr.upstream.providers import Provider
from routstr.upstream.spec import ProviderSpec
from routstr.wallet.identity_upgrade import upgrade_token_identities
from routstr.wallet.lightning_in import Invoices
from routstr.wallet.lightning_out import Payouts
from routstr.wallet.mints import ForeignMintPolicy, MintRegistry
from routstr.wallet.redeem import Redeemer
from routstr.wallet.redeem_gate import RedeemGate
from routstr.wallet.refund import Refunder

log = logging.getLogger(__name__)

# What an unauthenticated client can make the node hold before its request is handled. aiohttp's C
# parser (3.14) keeps every header field it has read until the blank line that ends the headers,
# twice (raw bytes, and decoded str), with no cap on their total: only on the request line, on each
# field and on the count of fields. Its field check forgets a name that came in one piece before it
# checks the value, so a value alone can reach MAX_HEADER_FIELD_BYTES, and two consecutive names
# share that limit: the worst a field can cost is 2 * 1.5 * MAX_HEADER_FIELD_BYTES, a connection about
# MAX_HEADERS * 3 * MAX_HEADER_FIELD_BYTES + MAX_REQUEST_LINE_BYTES = 10 MiB (it was 48 MiB with
# 128 fields of 128 KiB). Past any limit the node answers 400 ``header_too_large`` and closes.
# The only large header is a Cashu token (X-Cashu, or as the key after "Bearer "): tokens are
# refused above 64 KiB (routstr/cashu/tokens.py), so 72 KiB leaves room for the prefix.
MAX_HEADER_FIELD_BYTES = 72 * 1024
# The OpenAI and Anthropic SDKs send about 15 fields, a browser about 22; a CDN and a proxy in
# front add about 10 (CF-*, X-Forwarded-*, X-Real-IP). 48 leaves room; aiohttp's default is 128.
MAX_HEADERS = 48
MAX_REQUEST_LINE_BYTES = 8 * 1024  # method, path with query, version: the node's paths are short
# aiohttp starts this clock when a connection opens and closes the connection if no whole request
# has come by then, so it also bounds how long a client sending its headers byte by byte holds
# that memory (aiohttp has no separate header timeout, nor a cap on connections). 75 s, as nginx:
# above the 60 s idle timeout of common load balancers, so that they close idle connections first.
KEEPALIVE_TIMEOUT_S = 75.0


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
    catalogue = Catalogue(
        settings.prices,
        rates.rate,
        settings.default_max_output_tokens,
        settings.image_input_tokens,
        settings.min_fitted_max_tokens,
    )
    catalogue.aliases = dict(settings.aliases)
    providers = [new_provider(settings, spec) for spec in settings.providers]
    refunder = Refunder(db, mints)
    xcashu = XCashu(db, mints, redeemer, refunder, secret)
    pipeline = Pipeline(
        db,
        auth,
        catalogue,
        providers,
        settings.max_body_bytes,
        settings.reservation_ttl_s,
        xcashu,
        settings.aliases,
        settings.missing_key_status,
        limiter,
        LimitPolicy(
            Limits(
                settings.rate_limit_requests_per_minute,
                settings.rate_limit_tokens_per_hour,
                settings.rate_limit_concurrent,
            )
        ),
        counters,
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
        providers,
        pipeline,
        rates,
        xcashu,
        invoices,
        payouts,
        nostr=node_key(settings.nsec, secret),
    )


def _pooled_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
    )


def new_provider(settings: Settings, spec: ProviderSpec) -> Provider:
    """A provider with its own pooled client (a slow one cannot starve the others) and breaker."""
    client = Upstream(
        spec.base_url,
        spec.api_key,
        _pooled_session(),
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


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_context],
        handler_args={
            "max_field_size": MAX_HEADER_FIELD_BYTES,
            "max_headers": MAX_HEADERS,
            "max_line_size": MAX_REQUEST_LINE_BYTES,
            "keepalive_timeout": KEEPALIVE_TIMEOUT_S,
        },
    )
    envelope_parse_errors(app)  # past those limits too, the answer is the spec's envelope
    app[METRICS] = NodeMetrics()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await upgrade(settings.database_url)
        db = Database(settings.database_url, settings.db_pool_size)
        session = _pooled_session()
        node = await build_node(settings, session, db, app[METRICS])
        app[NODE] = node
        await node.catalogue.refresh(node.providers)
        await store_first_password(db, settings.admin_password)
        managed = ManagedCatalogue(
            db,
            node.auth.secret,
            node.catalogue,
            node.providers,
            [node.pipeline],
            functools.partial(new_provider, settings),
            settings.providers,
            dict(settings.aliases),
            settings.prices,
            node.rates,
        )
        await managed.reload()  # providers and model settings stored through the admin API
        if not node.providers:
            log.warning("no provider is configured or stored and switched on: every model is refused")
        app[MANAGED] = managed

        tasks = start_jobs(settings, node, managed)
        live_rate = needs_live_rate(settings) or managed.needs_live_rate()
        managed.rates_running = live_rate  # if not, it starts the feed when a USD price is set
        rates = node.rates.running() if live_rate else contextlib.nullcontext()
        async with rates:
            yield
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await session.close()
        await node.pipeline.limiter.close()
        await managed.close()
        for provider in node.providers:
            await provider.client.session.close()
        await db.close()

    app.cleanup_ctx.append(lifecycle)
    app.cleanup_ctx.append(metrics.separate_site(settings))  # METRICS_PORT: /metrics without a token
    api = (llm, info, balance, child_keys, lightning, webhook_routes, health, docs, metrics)
    for module in (*api, admin, admin_access, admin_catalogue, admin_keys):
        module.add_routes(app)
    dashboard.add_routes(app)
    _cors(app, settings.cors_origins)
    return app


def _cors(app: web.Application, origins: tuple[str, ...]) -> None:
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=False,
        expose_headers="*",
        allow_headers="*",
        allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
        max_age=86400,
    )
    cors = aiohttp_cors.setup(app, defaults={o: options for o in origins})
    for route in list(app.router.routes()):
        cors.add(route)
