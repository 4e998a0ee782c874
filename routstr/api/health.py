"""Liveness and readiness for load balancers and orchestrators.

``/health``: the process answers. ``/ready``: it can take paid requests: the database answers now,
at least one mint and one provider are usable (from the mint health check every 30 s and the last
model-list fetch and connection breaker of each provider: a model that fails cools down alone and
does not make its provider unusable; nothing is probed per call, so a balancer polling every second
costs the mints and providers nothing).
"""

from __future__ import annotations

import time

from aiohttp import web
from sqlalchemy import text

from routstr.api.responses import json_response
from routstr.node import NODE


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    node = request.app[NODE]
    checks: dict[str, object] = {}
    t0 = time.perf_counter()
    try:
        async with node.db.read() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "ms": round((time.perf_counter() - t0) * 1000, 2)}
    except Exception as e:  # any failure to reach the database means not ready
        checks["database"] = {"ok": False, "error": type(e).__name__}
    mints = {url: h.up for url, h in node.mints.health.items()}
    checks["mints"] = {"ok": any(mints.values()), "up": mints}
    providers = {p.name: p.answered is not False and p.breaker.available() for p in node.providers}
    checks["providers"] = {"ok": any(providers.values()), "usable": providers}
    ok = all(bool(c["ok"]) for c in checks.values() if isinstance(c, dict))
    return json_response(
        {"status": "ready" if ok else "not_ready", "checks": checks}, status=200 if ok else 503
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
