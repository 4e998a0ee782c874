"""LLM endpoints: each one is the payment pipeline plus its adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from routstr.api.middleware import LEDGER_REF, REQUEST_ID
from routstr.api.state import NODE
from routstr.billing.adapter import EndpointAdapter
from routstr.billing.adapters.chat import ChatCompletions
from routstr.billing.adapters.completions import Completions
from routstr.billing.adapters.embeddings import Embeddings
from routstr.billing.adapters.responses import Responses

ROUTES: dict[str, EndpointAdapter] = {
    "/v1/chat/completions": ChatCompletions(),
    "/v1/completions": Completions(),
    "/v1/embeddings": Embeddings(),
    "/v1/responses": Responses(),
}


def _handler(adapter: EndpointAdapter) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await request.app[NODE].pipeline.run(
            request, adapter, request[REQUEST_ID], request[LEDGER_REF]
        )

    return handle


def add_routes(app: web.Application) -> None:
    for path, adapter in ROUTES.items():
        app.router.add_post(path, _handler(adapter))
