"""LLM endpoints: each one is the payment pipeline plus its client's dialect (``routstr.dialects``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from routstr.api.middleware import LEDGER_REF, REQUEST_ID
from routstr.api.responses import json_response
from routstr.billing.body import read_json_body
from routstr.core.usage import estimate_tokens
from routstr.dialects import anthropic, openai_chat, openai_media, openai_responses
from routstr.dialects.sides import ClientSide
from routstr.net.client_address import client_address
from routstr.node import NODE

ROUTES: dict[str, ClientSide] = {
    "/v1/chat/completions": openai_chat.CHAT_CLIENT,
    "/v1/completions": openai_chat.COMPLETIONS_CLIENT,
    "/v1/embeddings": openai_media.EMBEDDINGS_CLIENT,
    "/v1/responses": openai_responses.CLIENT,
    "/v1/images/generations": openai_media.IMAGES_CLIENT,
    "/v1/audio/transcriptions": openai_media.TRANSCRIPTIONS_CLIENT,
    "/v1/messages": anthropic.CLIENT,
    # Claude Code appends /v1/messages to ANTHROPIC_BASE_URL, which users set to <node>/v1
    "/v1/v1/messages": anthropic.CLIENT,
}


def _client(request: web.Request) -> str | None:
    """The client's address (through a trusted proxy's X-Forwarded-For), for per-address limits."""
    return client_address(request, request.app[NODE].settings.trusted_proxies)


def _handler(client: ClientSide) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await request.app[NODE].pipeline.run(request, client, request[REQUEST_ID], request[LEDGER_REF])

    return handle


async def count_tokens(request: web.Request) -> web.Response:
    """Anthropic's token counter, answered by the node (the upstream may have none): the documented
    estimate of the request's text, free of charge."""
    node = request.app[NODE]
    await node.auth.key_id(node.auth.require_bearer(request.headers), _client(request))
    raw, body = await read_json_body(request, node.settings.max_body_bytes)
    facts = anthropic.CLIENT.inspect({"max_tokens": 1, **body}, len(raw))
    return json_response({"input_tokens": estimate_tokens(facts.prompt_text_bytes)})


def without_v1(path: str) -> str | None:
    """The no-``/v1`` alias of a route: clients whose base URL is the node's root (routstrd's opencode
    integration) send ``/chat/completions``. Only these named routes: an unknown path stays a 404,
    never an unpriced call to an upstream."""
    rest = path.removeprefix("/v1")
    return None if rest == path or rest.startswith("/v1/") else rest


def add_routes(app: web.Application) -> None:
    for path, client in ROUTES.items():
        handler = _handler(client)
        for p in (path, without_v1(path)):
            if p is not None:
                app.router.add_post(p, handler)
    for prefix in ("", "/v1", "/v1/v1"):
        app.router.add_post(prefix + "/messages/count_tokens", count_tokens)
