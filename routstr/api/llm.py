"""LLM endpoints: each one is the payment pipeline plus its adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from routstr.api.info import json_response
from routstr.api.middleware import LEDGER_REF, REQUEST_ID
from routstr.api.state import NODE
from routstr.billing.adapter import EndpointAdapter
from routstr.billing.adapters.audio import AudioTranscriptions
from routstr.billing.adapters.chat import ChatCompletions
from routstr.billing.adapters.completions import Completions
from routstr.billing.adapters.embeddings import Embeddings
from routstr.billing.adapters.images import ImageGenerations
from routstr.billing.adapters.messages import AnthropicMessages
from routstr.billing.adapters.responses import Responses
from routstr.billing.body import read_json_body
from routstr.core.usage import estimate_tokens
from routstr.net.client_address import client_address

ROUTES: dict[str, EndpointAdapter] = {
    "/v1/chat/completions": ChatCompletions(),
    "/v1/completions": Completions(),
    "/v1/embeddings": Embeddings(),
    "/v1/responses": Responses(),
    "/v1/images/generations": ImageGenerations(),
    "/v1/audio/transcriptions": AudioTranscriptions(),
    "/v1/messages": (_MESSAGES := AnthropicMessages()),
    # Claude Code appends /v1/messages to ANTHROPIC_BASE_URL, which users set to <node>/v1
    "/v1/v1/messages": _MESSAGES,
}


def _client(request: web.Request) -> str | None:
    """The client's address (through a trusted proxy's X-Forwarded-For), for per-address limits."""
    return client_address(request, request.app[NODE].settings.trusted_proxies)


def _handler(adapter: EndpointAdapter) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await request.app[NODE].pipeline.run(
            request, adapter, request[REQUEST_ID], request[LEDGER_REF]
        )

    return handle


async def count_tokens(request: web.Request) -> web.Response:
    """Anthropic's token counter, answered by the node (the upstream may have none): the documented
    estimate of the request's text, free of charge."""
    node = request.app[NODE]
    await node.auth.key_id(node.auth.require_bearer(request.headers), _client(request))
    raw, body = await read_json_body(request, node.settings.max_body_bytes)
    facts = _MESSAGES.inspect({"max_tokens": 1, **body}, len(raw))
    return json_response({"input_tokens": estimate_tokens(facts.prompt_text_bytes)})


def without_v1(path: str) -> str | None:
    """The no-``/v1`` alias of a route: clients whose base URL is the node's root (routstrd's opencode
    integration) send ``/chat/completions``. Only these named routes: an unknown path stays a 404,
    never an unpriced call to an upstream."""
    rest = path.removeprefix("/v1")
    return None if rest == path or rest.startswith("/v1/") else rest


def add_routes(app: web.Application) -> None:
    for path, adapter in ROUTES.items():
        handler = _handler(adapter)
        for p in (path, without_v1(path)):
            if p is not None:
                app.router.add_post(p, handler)
    for prefix in ("", "/v1", "/v1/v1"):
        app.router.add_post(prefix + "/messages/count_tokens", count_tokens)
