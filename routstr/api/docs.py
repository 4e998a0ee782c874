"""``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, all served by the node itself (no CDN)."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from aiohttp import web

from routstr.api.openapi import openapi_document
from routstr.api.responses import json_response

STATIC = Path(__file__).parent / "static"

_SWAGGER = """<!doctype html><html><head><meta charset="utf-8"><title>routstr API</title>
<link rel="stylesheet" href="/static/swagger/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/static/swagger/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script></body></html>"""

_REDOC = """<!doctype html><html><head><meta charset="utf-8"><title>routstr API</title></head><body>
<redoc spec-url="/openapi.json"></redoc><script src="/static/redoc.standalone.js"></script></body></html>"""


async def openapi(_: web.Request) -> web.Response:
    return json_response(openapi_document())


async def docs(_: web.Request) -> web.Response:
    return web.Response(text=_SWAGGER, content_type="text/html")


async def redoc(_: web.Request) -> web.Response:
    return web.Response(text=_REDOC, content_type="text/html")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)
    app.router.add_get("/redoc", redoc)
    app.router.add_static("/static/swagger", swagger_ui_bundle.swagger_ui_path)
    app.router.add_get("/static/redoc.standalone.js", _redoc_js)


async def _redoc_js(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "redoc.standalone.js")
