"""A fake LLM upstream (OpenAI and Anthropic APIs) that answers instantly and deterministically.

Used by the test-suite, ``routstr demo`` and the benchmark, so it is an aiohttp app that serialises with
orjson and does almost nothing per request. Routes (all under ``/v1``):

==================================  ==========================================  ==========================
``GET  /models``, ``/models/{id}``  model list (``DEFAULT_MODELS`` + fail-*)    Bearer key
``POST /chat/completions``          chat, streamed or not                       :mod:`.fake_openai_chat`
``POST /completions``               legacy completions, streamed or not         :mod:`.fake_openai_more`
``POST /embeddings``                8-float unit vectors (or ``dimensions``)    :mod:`.fake_openai_more`
``POST /responses``                 Responses API, streamed or not              :mod:`.fake_openai_more`
``POST /images/generations``        URLs or 1x1 PNGs, no usage                  :mod:`.fake_openai_media`
``POST /audio/transcriptions``      multipart upload, no usage                  :mod:`.fake_openai_media`
``POST /messages``                  Anthropic Messages, streamed or not         :mod:`.fake_anthropic`,
``POST /messages/count_tokens``     ``{"input_tokens": n}``                     ``x-api-key`` auth
==================================  ==========================================  ==========================

Replies and usage follow the token rules of :mod:`routstr.devtools.fake_llm` (chat: ``count_tokens``,
``expected_usage``), :mod:`routstr.devtools.fake_llm_openai` (``expected_completion_usage``,
``expected_embedding_usage``, ``expected_responses_usage``) and :mod:`routstr.devtools.fake_anthropic`
(``expected_anthropic_usage``). Failures are chosen by MODEL NAME (the node forwards the body unchanged
but may filter headers), or by a ``fake_behavior`` body field, on every route (Anthropic's in its own
error shape, see :mod:`.fake_anthropic`):

==========================  ======================================================================
``fail-500``                500 ``server_error``
``fail-429``                429 ``rate_limit_exceeded`` with ``Retry-After: 1``
``fail-400``                400 ``invalid_request_error`` / ``context_length_exceeded``
``fail-timeout``            no answer for 60 s (``timeout_s``; ``fake_delay_ms`` overrides), then 504;
                            stops as soon as the client goes away
``fail-connection-drop``    closes the connection without any response
``slow-stream``             normal reply; streamed with ``fake_delay_ms`` (default 100) between events
                            (non-stream: answers after 3 x that)
``cut-stream``              stream sends its opening events and up to 2 content deltas, then closes the
                            connection mid-body: no finish, usage or end marker
                            (non-stream: like ``fail-connection-drop``)
``no-usage``                normal reply without any usage (stream: no usage anywhere)
==========================  ======================================================================

``fake_delay_ms`` on any other model: the pause between stream events, or before a non-streamed answer.
Counters (``app[STATE]``, ``GET /_fake/stats``): per path, per model, per key; ``last_body`` and
``last_headers`` of the latest request on any route (for audio: the form fields, the file as its size).

Run standalone: ``python -m routstr.devtools.fake_upstream --port 8001``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from aiohttp import web

from routstr.devtools.fake_anthropic import count_message_tokens, expected_anthropic_usage, messages
from routstr.devtools.fake_http import MODELS_BODY, STATE, FakeUpstreamState, json_response
from routstr.devtools.fake_llm import (
    DEFAULT_MODELS,
    FAILURE_MODELS,
    ApiError,
    FakeModel,
    count_tokens,
    expected_usage,
)
from routstr.devtools.fake_llm_openai import (
    expected_completion_usage,
    expected_embedding_usage,
    expected_responses_usage,
)
from routstr.devtools.fake_openai_chat import chat_completions, get_model, list_models, models_body, not_found
from routstr.devtools.fake_openai_media import audio_transcriptions, images_generations
from routstr.devtools.fake_openai_more import completions, embeddings, responses

__all__ = [
    "FAILURE_MODELS",
    "STATE",
    "ApiError",
    "FakeModel",
    "FakeUpstreamState",
    "build_app",
    "count_tokens",
    "expected_anthropic_usage",
    "expected_completion_usage",
    "expected_embedding_usage",
    "expected_responses_usage",
    "expected_usage",
    "start_fake_upstream",
]


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def stats(request: web.Request) -> web.Response:
    return json_response(request.app[STATE].snapshot())


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return json_response({"status": "reset"})


def build_app(
    models: list[FakeModel] | None = None,
    *,
    include_failure_models: bool = True,
    expected_api_key: str | None = None,
    timeout_s: float = 60.0,
) -> web.Application:
    """The fake upstream app. Failure models always behave as failures; the flag only lists them."""
    state = FakeUpstreamState(
        models={m.id: m for m in (models if models is not None else DEFAULT_MODELS)},
        include_failure_models=include_failure_models,
        expected_api_key=expected_api_key,
        timeout_s=timeout_s,
    )
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app[STATE] = state
    app[MODELS_BODY] = models_body(state)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/images/generations", images_generations)
    app.router.add_post("/v1/audio/transcriptions", audio_transcriptions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_message_tokens)
    app.router.add_get("/health", health)
    app.router.add_get("/_fake/stats", stats)
    app.router.add_post("/_fake/reset", reset)
    app.router.add_route("*", "/v1/{tail:.*}", not_found)
    return app


async def start_fake_upstream(
    host: str = "127.0.0.1", port: int = 0, app: web.Application | None = None, **app_kwargs: Any
) -> tuple[web.AppRunner, str]:
    """Serve ``app`` (default ``build_app(**app_kwargs)``); returns the runner (``await runner.cleanup()``
    to stop, ``runner.app[STATE]`` for the counters) and the base URL ``http://host:port/v1``."""
    runner = web.AppRunner(app or build_app(**app_kwargs), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    return runner, f"http://{host}:{bound_port}/v1"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Fake OpenAI/Anthropic upstream for routstr tests, demo and bench."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--api-key", default=None, help="require 'Authorization: Bearer KEY' (Anthropic: 'x-api-key: KEY')"
    )
    parser.add_argument("--hide-failure-models", action="store_true", help="do not list fail-* models")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="how long fail-timeout hangs")
    args = parser.parse_args(argv)
    app = build_app(
        include_failure_models=not args.hide_failure_models,
        expected_api_key=args.api_key,
        timeout_s=args.timeout_s,
    )
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        handler_cancellation=True,
        loop=loop,
        print=lambda _: print(f"fake upstream on http://{args.host}:{args.port}/v1", flush=True),
    )


if __name__ == "__main__":
    main()
