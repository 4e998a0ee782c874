"""The plumbing every route of the fake upstream shares: state and counters, auth, JSON, failures, SSE.

Kept apart from the routes so each API (OpenAI chat, the other OpenAI routes, Anthropic) reads as the API
it imitates, and so the failure models behave the same on every route.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from routstr.devtools.fake_llm import (
    CANNED_ERRORS,
    CUT_STREAM,
    FAIL_CONNECTION_DROP,
    FAIL_TIMEOUT,
    FAILURE_MODELS,
    SLOW_STREAM,
    ApiError,
    FakeModel,
)

CUT_AFTER_DELTAS = 2
DEFAULT_SLOW_DELAY_MS = 100
JSON_TYPE = "application/json"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
TIMEOUT_ERROR = ApiError(504, "Fake upstream timed out.", "server_error", code="timeout")


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
    x_api_keys: Counter[str] = field(default_factory=Counter)  # x-api-key value (Anthropic) -> requests
    last_authorization: str | None = None
    last_headers: dict[str, str] = field(default_factory=dict)
    last_body: Any = None

    def reset(self) -> None:
        self.requests_total = self.unauthorized = 0
        self.by_path.clear()
        self.by_model.clear()
        self.authorizations.clear()
        self.x_api_keys.clear()
        self.last_authorization, self.last_headers, self.last_body = None, {}, None

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "unauthorized": self.unauthorized,
            "by_path": dict(self.by_path),
            "by_model": dict(self.by_model),
            "authorizations": dict(self.authorizations),
            "x_api_keys": dict(self.x_api_keys),
            "last_authorization": self.last_authorization,
            "last_headers": dict(self.last_headers),
            "last_body": self.last_body,
        }

    def knows(self, model: str) -> bool:
        return model in self.models or model in FAILURE_MODELS


STATE = web.AppKey("fake_upstream_state", FakeUpstreamState)
MODELS_BODY = web.AppKey("fake_upstream_models_body", bytes)
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """Unique within the process, e.g. ``chatcmpl-fake0000000001``."""
    return f"{prefix}{next(_ids):010d}"


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON_TYPE, headers=headers)


def openai_error(err: ApiError) -> web.Response:
    """OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return json_response(err.body(), err.status, err.headers or None)


def record(request: web.Request, state: FakeUpstreamState) -> None:
    """Count the request and keep its headers (the Authorization and x-api-key values are tallied)."""
    state.requests_total += 1
    state.by_path[request.path] += 1
    auth = request.headers.get("Authorization")
    state.last_authorization = auth
    state.last_headers = {str(k): v for k, v in request.headers.items()}
    if auth is not None:
        state.authorizations[auth] += 1
    if (key := request.headers.get("x-api-key")) is not None:
        state.x_api_keys[key] += 1


def check_bearer(request: web.Request, state: FakeUpstreamState) -> web.Response | None:
    """Count the request; OpenAI's 401 if ``Authorization: Bearer <expected key>`` is missing."""
    record(request, state)
    auth = state.last_authorization
    if state.expected_api_key is None or auth == f"Bearer {state.expected_api_key}":
        return None
    state.unauthorized += 1
    shown = (auth or "")[7:][:3] + "…" if auth else "none"
    return openai_error(ApiError(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key"))


async def read_json(
    request: web.Request, state: FakeUpstreamState, error: Callable[[ApiError], web.Response]
) -> tuple[Any, web.Response | None]:
    """(body, None) or (None, a 400): the body is kept as ``last_body`` and its model counted."""
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None, error(ApiError(400, "We could not parse the JSON body of your request."))
    note_body(state, body)
    return body, None


def note_body(state: FakeUpstreamState, body: Any) -> None:
    state.last_body = body
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        state.by_model[body["model"]] += 1


@dataclass(frozen=True, slots=True)
class Plan:
    """How to answer: the failure model in force ("" if none), the ``fake_delay_ms`` in s, streamed or not."""

    behavior: str
    delay: float | None
    stream: bool

    @property
    def cut(self) -> bool:
        return self.behavior == CUT_STREAM

    @property
    def chunk_delay(self) -> float | None:
        """Pause between stream events: ``fake_delay_ms``, or 100 ms for ``slow-stream``."""
        if self.delay is None and self.behavior == SLOW_STREAM:
            return DEFAULT_SLOW_DELAY_MS / 1000
        return self.delay


def plan_for(body: Any, model: Any) -> Plan:
    """The ``fake_behavior`` field wins over a failure model named by ``model``."""
    fields = body if isinstance(body, dict) else {}
    forced = fields.get("fake_behavior")
    if isinstance(forced, str) and forced:
        behavior = forced
    else:
        behavior = model if isinstance(model, str) and model in FAILURE_MODELS else ""
    delay_ms = fields.get("fake_delay_ms")
    if isinstance(delay_ms, str):  # multipart form fields are strings
        try:
            delay_ms = float(delay_ms)
        except ValueError:
            delay_ms = None
    delay = float(delay_ms) / 1000 if isinstance(delay_ms, int | float) else None
    return Plan(behavior, delay, fields.get("stream") is True)


async def fail_or_wait(
    request: web.Request, plan: Plan, timeout_s: float, error: Callable[[ApiError], web.Response]
) -> web.StreamResponse | None:
    """The failure models' answer, or None to answer normally (after the non-stream ``fake_delay_ms``)."""
    b = plan.behavior
    if b in CANNED_ERRORS:
        return error(CANNED_ERRORS[b])
    if b == FAIL_TIMEOUT:
        await sleep_while_connected(request, timeout_s if plan.delay is None else plan.delay)
        return error(TIMEOUT_ERROR)
    if b == FAIL_CONNECTION_DROP or (b == CUT_STREAM and not plan.stream):
        drop(request)
        return web.Response()
    if not plan.stream:
        wait = plan.delay
        if b == SLOW_STREAM:  # as long as the stream would have taken
            wait = (wait if wait is not None else DEFAULT_SLOW_DELAY_MS / 1000) * 3
        if wait:
            await asyncio.sleep(wait)
    return None


async def write_sse(
    request: web.Request, head: list[bytes], deltas: list[bytes], tail: list[bytes], plan: Plan
) -> web.StreamResponse:
    """Send SSE events; ``cut-stream`` sends the head and 2 deltas, then closes the connection mid-body."""
    events = head + deltas[:CUT_AFTER_DELTAS] if plan.cut else head + deltas + tail
    delay = plan.chunk_delay
    resp = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await resp.prepare(request)
        if delay:
            for i, event in enumerate(events):
                if i:
                    await asyncio.sleep(delay)
                await resp.write(event)
        else:
            await resp.write(b"".join(events))  # one write: the bytes on the wire are the same SSE events
        if plan.cut:
            drop(request)
            return resp
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client went away mid-stream: nothing to answer, nothing to log
    return resp


def sse_data(data: Any) -> bytes:
    """An OpenAI chat/completions event: ``data: <json>``."""
    return b"data: " + orjson.dumps(data) + b"\n\n"


def sse_event(name: str, data: Any) -> bytes:
    """A named event (Responses API, Anthropic): ``event: <name>`` then ``data: <json>``."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def drop(request: web.Request) -> None:
    """Close the TCP connection: the client sees a disconnect (or an incomplete chunked body)."""
    if request.transport is not None:
        request.transport.close()


async def sleep_while_connected(request: web.Request, seconds: float) -> None:
    """Sleep, but give up as soon as the client disconnects (aiohttp does not cancel by default)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(min(0.1, left))
