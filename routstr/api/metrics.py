"""``GET /metrics``: Prometheus text, on the main port with an admin token, or without one on a
separate address (``METRICS_HOST``/``METRICS_PORT``) that only the monitoring network reaches.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from routstr import __version__
from routstr.api.admin import require_admin
from routstr.config import Settings
from routstr.metrics.books_cache import BooksCache
from routstr.metrics.collector import Readings, render
from routstr.metrics.counters import METRICS
from routstr.node import NODE, Node

log = logging.getLogger(__name__)

BOOKS: web.AppKey[BooksCache] = web.AppKey("metrics_books", BooksCache)
_MAIN: web.AppKey[web.Application] = web.AppKey("metrics_main_app", web.Application)


async def _answer(app: web.Application, node: Node) -> web.Response:
    books, age = await app[BOOKS].get(node.db)
    readings = Readings(
        metrics=app[METRICS],
        in_flight=node.pipeline.in_flight,
        mint_errors=node.mints.errors,
        mint_up={url: h.up for url, h in node.mints.health.items()},
        provider_available={p.spec.name: p.breaker.available() for p in node.providers},
        books=books,
        books_age_s=age,
        version=__version__,
    )
    return web.Response(body=render(readings), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_metrics(request: web.Request) -> web.Response:
    """The main port: admin token required (``Authorization: Bearer rta-…``)."""
    node = await require_admin(request)
    return await _answer(request.app, node)


async def _get_metrics_apart(request: web.Request) -> web.Response:
    """The separate address: no token (reaching the address is the permission)."""
    main = request.app[_MAIN]
    return await _answer(main, main[NODE])


def add_routes(app: web.Application) -> None:
    app[BOOKS] = BooksCache()
    app.router.add_get("/metrics", get_metrics)


def separate_site(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context serving ``/metrics`` on its own address, after the node is built."""

    async def serve(app: web.Application) -> AsyncIterator[None]:
        if settings.metrics_port is None:
            yield
            return
        side = web.Application()
        side[_MAIN] = app
        side.router.add_get("/metrics", _get_metrics_apart)
        runner = web.AppRunner(side, access_log=None)
        await runner.setup()
        # workers of `routstr serve --workers N` (routstr/workers.py) share the address like the main
        # port; each scrape is then answered by one of them, with that process's counters
        reuse = settings.worker or None
        await web.TCPSite(runner, settings.metrics_host, settings.metrics_port, reuse_port=reuse).start()
        log.info("metrics served without a token on http://%s:%d/metrics", *runner.addresses[0][:2])
        try:
            yield
        finally:
            await runner.cleanup()

    return serve
