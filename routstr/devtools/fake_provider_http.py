"""The plumbing the fake provider's routes share: state, auth, errors, and the SSE writer that honours
``[slow:S]`` and ``[cut:N]`` (see :mod:`routstr.devtools.fake_provider_model`)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from routstr.devtools.fake_provider_model import Directives

JSON_TYPE = "application/json"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
FLUSH_BYTES = 64 * 1024
Event = tuple[bytes, int]  # an SSE event and the output tokens it carries


@dataclass
class FakeProviderState:
    """What the fake saw: requests per path, the latest body per path, the last streams' fate."""

    models: tuple[str, ...]
    api_key: str | None = None
    by_path: Counter[str] = field(default_factory=Counter)
    last_body: dict[str, Any] = field(default_factory=dict)  # path -> body
    last_headers: dict[str, dict[str, str]] = field(default_factory=dict)  # path -> headers
    cut_streams: int = 0  # streams closed by a [cut:N]
    client_gone: int = 0  # streams whose reader went away before the end

    def reset(self) -> None:
        self.by_path.clear()
        self.last_body.clear()
        self.last_headers.clear()
        self.cut_streams = self.client_gone = 0


STATE = web.AppKey("fake_provider_state", FakeProviderState)
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}fake{next(_ids):08d}"


def now() -> int:
    return int(time.time())


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON_TYPE, headers=headers)


def openai_error(status: int, message: str, code: str | None = None) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return json_response({"error": {"message": message, "type": kind, "param": None, "code": code}}, status)


def anthropic_error(status: int, message: str) -> web.Response:
    kind = {401: "authentication_error", 404: "not_found_error"}.get(status, "invalid_request_error")
    return json_response({"type": "error", "error": {"type": kind, "message": message}}, status)


async def read_request(
    request: web.Request, anthropic: bool = False
) -> tuple[dict[str, Any], bytes] | web.Response:
    """Count, authenticate (Bearer; Anthropic: ``x-api-key`` or Bearer, and ``anthropic-version``) and
    parse the body: (body, raw bytes), or the error answer."""
    state = request.app[STATE]
    state.by_path[request.path] += 1
    state.last_headers[request.path] = {str(k): v for k, v in request.headers.items()}
    auth = request.headers.get("Authorization", "")
    key = auth[7:] if auth.startswith("Bearer ") else None
    if anthropic:
        key = request.headers.get("x-api-key") or key
    fail = anthropic_error if anthropic else openai_error
    if state.api_key is not None and key != state.api_key:
        return fail(401, "invalid api key")
    if anthropic and not request.headers.get("anthropic-version"):
        return fail(400, "anthropic-version: header is required")
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return fail(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return fail(400, "model: Field required")
    if body["model"] not in state.models:
        return fail(404, f"The model `{body['model']}` does not exist")
    state.last_body[request.path] = body
    return body, raw


def drop(request: web.Request) -> None:
    """Close the connection (buffered bytes still go out): the reader sees a body that never ended."""
    if request.transport is not None:
        request.transport.close()


def sse(data: Any) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def named_sse(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def write_stream(request: web.Request, events: Iterable[Event], d: Directives) -> web.StreamResponse:
    """Send the events; ``[slow:S]`` sleeps before each event with output, ``[cut:N]`` closes the connection
    before the event that would take the output past N tokens."""
    state = request.app[STATE]
    resp = web.StreamResponse(headers=SSE_HEADERS)
    await resp.prepare(request)
    buf: list[bytes] = []
    size = sent = 0
    try:
        for data, tokens in events:
            if tokens and d.cut is not None and sent + tokens > d.cut:
                if buf:
                    await resp.write(b"".join(buf))
                state.cut_streams += 1
                drop(request)
                return resp
            sent += tokens
            if d.slow:
                if tokens:
                    await asyncio.sleep(d.slow)
                await resp.write(data)
                continue
            buf.append(data)
            size += len(data)
            if size >= FLUSH_BYTES:
                await resp.write(b"".join(buf))
                buf, size = [], 0
        await resp.write_eof(b"".join(buf))
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        state.client_gone += 1
    return resp
