"""The application factory: the aiohttp app over the node (built by ``routstr.node``, the composition
root), its routes, middleware and lifecycle. Nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp_cors
from aiohttp import web

from routstr.admin import views as dashboard
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
from routstr.api.middleware import envelope_parse_errors, request_context
from routstr.config import Settings
from routstr.jobs import start_jobs
from routstr.metrics.counters import METRICS, NodeMetrics
from routstr.node import MANAGED, NODE, build_managed, build_node, needs_live_rate, pooled_session
from routstr.operator.password import store_first_password
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade

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
        session = pooled_session()
        node = await build_node(settings, session, db, app[METRICS])
        app[NODE] = node
        await node.catalogue.refresh()  # the providers' model lists, into the first snapshot
        await store_first_password(db, settings.admin_password)
        managed = build_managed(settings, node)
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
        for provider in node.runtime.current.providers:
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
