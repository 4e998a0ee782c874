"""An OpenAI-compatible LLM upstream that answers instantly and deterministically: the one thing we imitate.

Used by the test-suite, ``routstr demo`` and the benchmark, so it is an aiohttp app that serialises with
orjson and does almost nothing per request. Replies and usage follow :mod:`routstr.devtools.fake_llm`
(``count_tokens``, ``expected_usage``). Failures are chosen by MODEL NAME (the node forwards the body
unchanged but may filter headers), or by a ``fake_behavior`` body field:

==========================  ======================================================================
``fail-500``                500 ``server_error``
``fail-429``                429 ``rate_limit_exceeded`` with ``Retry-After: 1``
``fail-400``                400 ``invalid_request_error`` / ``context_length_exceeded``
``fail-timeout``            no answer for 60 s (``timeout_s``; ``fake_delay_ms`` overrides), then 504;
                            stops as soon as the client goes away
``fail-connection-drop``    closes the connection without any response
``slow-stream``             normal reply; streamed with ``fake_delay_ms`` (default 100) between chunks
                            (``fake_delay_ms`` also slows the stream of any other model)
``cut-stream``              stream sends the role delta and up to 2 content deltas, then closes the
                            connection mid-body: no finish_reason, usage or [DONE]
                            (non-stream: like ``fail-connection-drop``)
``no-usage``                normal reply without any usage (stream: no usage chunk)
==========================  ======================================================================

Run standalone: ``python -m routstr.devtools.fake_upstream --port 8001``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from routstr.devtools.fake_llm import (
    CANNED_ERRORS,
    CUT_STREAM,
    DEFAULT_MODELS,
    FAIL_CONNECTION_DROP,
    FAIL_TIMEOUT,
    FAILURE_MODELS,
    NO_USAGE,
    SLOW_STREAM,
    ApiError,
    FakeModel,
    count_tokens,
    expected_usage,
    make_usage,
    model_not_found,
    prompt_tokens,
    reply_for,
    stream_pieces,
    validate_chat,
)

__all__ = [
    "FAILURE_MODELS",
    "STATE",
    "ApiError",
    "FakeModel",
    "FakeUpstreamState",
    "build_app",
    "count_tokens",
    "expected_usage",
    "start_fake_upstream",
]

CUT_AFTER_CHUNKS = 3
DEFAULT_SLOW_DELAY_MS = 100
_JSON = "application/json"


@dataclass
class FakeUpstreamState:
    """Settings and request counters of one fake upstream: tests read ``app[STATE]`` or /_fake/stats."""

    models: dict[str, FakeModel]
    include_failure_models: bool = True
    expected_api_key: str | None = None
    timeout_s: float = 60.0
    requests_total: int = 0
    unauthorized: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    authorizations: Counter[str] = field(default_factory=Counter)  # Authorization value -> requests
    last_authorization: str | None = None
    last_headers: dict[str, str] = field(default_factory=dict)
    last_body: Any = None

    def reset(self) -> None:
        self.requests_total = self.unauthorized = 0
        self.by_path.clear()
        self.by_model.clear()
        self.authorizations.clear()
        self.last_authorization, self.last_headers, self.last_body = None, {}, None

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "unauthorized": self.unauthorized,
            "by_path": dict(self.by_path),
            "by_model": dict(self.by_model),
            "authorizations": dict(self.authorizations),
            "last_authorization": self.last_authorization,
            "last_headers": dict(self.last_headers),
            "last_body": self.last_body,
        }


STATE = web.AppKey("fake_upstream_state", FakeUpstreamState)
_ids = itertools.count(1)


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=_JSON, headers=headers)


def openai_error(err: ApiError) -> web.Response:
    """OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return _json(err.body(), err.status, err.headers or None)


def _record(request: web.Request, state: FakeUpstreamState) -> web.Response | None:
    """Count the request and check its key; an error response if the key is wrong."""
    state.requests_total += 1
    state.by_path[request.path] += 1
    auth = request.headers.get("Authorization")
    state.last_authorization = auth
    state.last_headers = {str(k): v for k, v in request.headers.items()}
    if auth is not None:
        state.authorizations[auth] += 1
    if state.expected_api_key is not None and auth != f"Bearer {state.expected_api_key}":
        state.unauthorized += 1
        shown = (auth or "")[7:][:3] + "…" if auth else "none"
        return openai_error(ApiError(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key"))
    return None


def _models_body(state: FakeUpstreamState) -> bytes:
    data = [m.to_json() for m in state.models.values()]
    if state.include_failure_models:
        data += [FakeModel(name, owned_by="fake-failures").to_json() for name in FAILURE_MODELS]
    return orjson.dumps({"object": "list", "data": data})


async def list_models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (denied := _record(request, state)) is not None:
        return denied
    return web.Response(body=request.app[_MODELS_BODY], content_type=_JSON)


async def get_model(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (denied := _record(request, state)) is not None:
        return denied
    model_id = request.match_info["model"]
    model = state.models.get(model_id)
    if model is None and model_id in FAILURE_MODELS:
        model = FakeModel(model_id, owned_by="fake-failures")
    if model is None:
        return openai_error(model_not_found(model_id))
    return _json(model.to_json())


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if (denied := _record(request, state)) is not None:
        return denied
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return openai_error(ApiError(400, "We could not parse the JSON body of your request."))
    state.last_body = body
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        state.by_model[body["model"]] += 1
    if (invalid := validate_chat(body, state.models)) is not None:
        return openai_error(invalid)
    model: str = body["model"]
    forced = body.get("fake_behavior")
    behavior = forced if isinstance(forced, str) and forced else (model if model in FAILURE_MODELS else "")
    delay_ms = body.get("fake_delay_ms")
    delay = float(delay_ms) / 1000 if isinstance(delay_ms, int | float) else None
    stream = body.get("stream") is True

    if behavior in CANNED_ERRORS:
        return openai_error(CANNED_ERRORS[behavior])
    if behavior == FAIL_TIMEOUT:
        await _sleep_while_connected(request, state.timeout_s if delay is None else delay)
        return openai_error(ApiError(504, "Fake upstream timed out.", "server_error", code="timeout"))
    if behavior == FAIL_CONNECTION_DROP or (behavior == CUT_STREAM and not stream):
        _drop(request)
        return web.Response()

    text, finish = reply_for(body)
    usage = None if behavior == NO_USAGE else make_usage(prompt_tokens(body["messages"]), count_tokens(text))
    if stream:
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        if delay is None and behavior == SLOW_STREAM:
            delay = DEFAULT_SLOW_DELAY_MS / 1000
        return await _stream(
            request, model, text, finish, usage if include_usage else None, delay, cut=behavior == CUT_STREAM
        )
    if behavior == SLOW_STREAM:
        await asyncio.sleep((delay if delay is not None else DEFAULT_SLOW_DELAY_MS / 1000) * 3)
    return web.Response(body=_completion(model, text, finish, usage), content_type=_JSON)


def _completion(model: str, text: str, finish: str, usage: dict[str, Any] | None) -> bytes:
    out: dict[str, Any] = {
        "id": f"chatcmpl-fake{next(_ids):010d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "system_fingerprint": "fp_fake",
    }
    if usage is not None:
        out["usage"] = usage
    return orjson.dumps(out)


async def _stream(
    request: web.Request,
    model: str,
    text: str,
    finish: str,
    usage: dict[str, Any] | None,
    delay: float | None,
    cut: bool,
) -> web.StreamResponse:
    """SSE like OpenAI: role delta, content deltas, finish chunk, [usage chunk], ``[DONE]``."""
    base: dict[str, Any] = {
        "id": f"chatcmpl-fake{next(_ids):010d}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
    }
    if usage is not None:
        base["usage"] = None  # OpenAI sends "usage": null on every chunk but the last when asked for usage

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return b"data: " + orjson.dumps({**base, "choices": [choice]}) + b"\n\n"

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in stream_pieces(text)]
    if cut:
        events = events[:CUT_AFTER_CHUNKS]  # the role delta and a few words, nothing after
    else:
        events.append(chunk({}, finish))
        if usage is not None:
            events.append(b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
        events.append(b"data: [DONE]\n\n")

    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    try:
        await resp.prepare(request)
        if delay:
            for i, event in enumerate(events):
                if i:
                    await asyncio.sleep(delay)
                await resp.write(event)
        else:
            await resp.write(b"".join(events))  # one write: the bytes on the wire are the same SSE events
        if cut:
            _drop(request)
            return resp
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client went away mid-stream: nothing to answer, nothing to log
    return resp


def _drop(request: web.Request) -> None:
    """Close the TCP connection: the client sees a disconnect (or an incomplete chunked body)."""
    if request.transport is not None:
        request.transport.close()


async def _sleep_while_connected(request: web.Request, seconds: float) -> None:
    """Sleep, but give up as soon as the client disconnects (aiohttp does not cancel by default)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(min(0.1, left))


async def health(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def stats(request: web.Request) -> web.Response:
    return _json(request.app[STATE].snapshot())


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return _json({"status": "reset"})


async def not_found(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (denied := _record(request, state)) is not None:
        return denied
    return openai_error(ApiError(404, f"Invalid URL ({request.method} {request.path})", code="unknown_url"))


_MODELS_BODY = web.AppKey("fake_upstream_models_body", bytes)


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
    app[_MODELS_BODY] = _models_body(state)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_post("/v1/chat/completions", chat_completions)
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
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible upstream for routstr tests/demo.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY'")
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
