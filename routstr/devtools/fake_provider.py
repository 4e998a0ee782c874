"""A fake LLM provider that behaves like the real ones where a node might assume otherwise.

The fake upstream (:mod:`routstr.devtools.fake_upstream`) echoes short answers; this one answers as a
provider that bills honestly but does not help its reseller: it writes until the output limit (or 16,384
tokens when none is set), generates ``n`` / ``best_of`` answers per prompt, charges 1,105 prompt tokens per
image URL and counts tool definitions as prompt, streams tool-call arguments, reports stream usage only
where the real API does (OpenAI: with ``stream_options.include_usage``; Responses: ``response.completed``
or ``response.incomplete``; Anthropic: input in ``message_start`` with ``output_tokens: 1``, the output
only in ``message_delta``), runs built-in tools (web search) and the priority tier (marked
``fake_surcharges`` in the answer: a real provider bills them on top), and queues ``background`` responses
(no usage). Used by the adversarial tests (``tests/adversarial``).

Routes, all under ``/v1``; auth ``Authorization: Bearer`` (``/messages``: ``x-api-key`` or Bearer, and an
``anthropic-version`` header), checked only if ``api_key`` is given:

======================  =========================================================================
``GET  /models``        the configured models (OpenAI's list shape, ``context_length`` 1,000,000)
``POST /chat/completions``  ``n`` choices; ``tools`` -> a tool call; ``web_search_options`` -> a search
``POST /completions``   ``prompt`` a string or a list (one set of ``n`` choices per prompt), ``best_of``
``POST /responses``     function tools -> ``function_call``; ``web_search*`` tools -> a search;
                        ``background: true`` -> ``status: queued``, ``usage: null``
``POST /messages``      Anthropic Messages; custom tools -> ``tool_use``; ``web_search_*`` -> a search
======================  =========================================================================

Output is made of 4-byte words (``"tok "``): tokens = bytes / 4 exactly, and the usage reported is exact.
How prompt tokens are counted, and the directives a request can carry in its text:

* ``[slow:S]``: S seconds before each streamed event with output (16 tokens per event): a slow stream,
  e.g. to outlive a node's reservation lease (``max_tokens: 400`` with ``[slow:0.2]`` lasts 5 s);
* ``[cut:N]``: the provider closes the connection after N output tokens: no finish, no usage;
* ``[stop:N]``: the answer ends after N tokens (``finish_reason: stop``);

are in :mod:`routstr.devtools.fake_provider_model`.

Run standalone: ``python -m routstr.devtools.fake_provider --port 8002 --models a,b``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from routstr.devtools.fake_provider_anthropic import messages
from routstr.devtools.fake_provider_http import STATE, FakeProviderState, json_response, now, openai_error
from routstr.devtools.fake_provider_openai import chat_completions, completions, responses

__all__ = ["STATE", "FakeProvider", "FakeProviderState", "build_app", "start_fake_provider"]

DEFAULT_MODELS = ("fake-gpt", "fake-claude")
CONTEXT_LENGTH = 1_000_000


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.by_path[request.path] += 1
    data = [
        {
            "id": m,
            "object": "model",
            "created": now(),
            "owned_by": "fake-provider",
            "context_length": CONTEXT_LENGTH,
        }
        for m in state.models
    ]
    return json_response({"object": "list", "data": data})


async def not_found(request: web.Request) -> web.Response:
    return openai_error(404, f"Unknown route {request.method} {request.path}")


def build_app(models: Sequence[str] = DEFAULT_MODELS, api_key: str | None = None) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = FakeProviderState(models=tuple(models), api_key=api_key)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/messages", messages)
    app.router.add_route("*", "/v1/{tail:.*}", not_found)
    return app


@dataclass
class FakeProvider:
    """A running fake provider: its base URL (ends with ``/v1``), what it saw, and ``await stop()``."""

    url: str
    state: FakeProviderState
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_fake_provider(
    host: str = "127.0.0.1", port: int = 0, models: Sequence[str] = DEFAULT_MODELS, api_key: str | None = None
) -> FakeProvider:
    runner = web.AppRunner(build_app(models, api_key), access_log=None, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return FakeProvider(f"http://{host}:{runner.addresses[0][1]}/v1", runner.app[STATE], runner)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake LLM provider that behaves like the real ones.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model ids")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    web.run_app(
        build_app(args.models.split(","), args.api_key),
        host=args.host,
        port=args.port,
        access_log=None,
        handler_cancellation=True,
        print=lambda _: print(f"fake provider on http://{args.host}:{args.port}/v1", flush=True),
    )


if __name__ == "__main__":
    main()
