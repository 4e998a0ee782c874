"""LLM endpoints: each one is the payment pipeline plus its adapter."""

from __future__ import annotations

from aiohttp import web

from routstr.api.middleware import LEDGER_REF, REQUEST_ID
from routstr.api.state import NODE
from routstr.billing.adapters.chat import ChatCompletions

_chat = ChatCompletions()


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await request.app[NODE].pipeline.run(request, _chat, request[REQUEST_ID], request[LEDGER_REF])


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
