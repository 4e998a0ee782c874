"""Anthropic's ``POST /v1/messages`` and ``/v1/messages/count_tokens``, deterministic like the OpenAI routes.

Auth is ``x-api-key`` or, as the anthropic SDK 2.x sends it, ``Authorization: Bearer`` (checked against
``expected_api_key``), and an ``anthropic-version`` header is required, as at Anthropic. Errors have
Anthropic's shape ``{"type": "error", "error": {"type", "message"}}``.
Failure models answer: ``fail-500`` 500 ``api_error``, ``fail-429`` 429 ``rate_limit_error`` with
``retry-after: 1``, ``fail-400`` 400 ``invalid_request_error``, ``fail-timeout`` 504 ``timeout_error``; the
others behave as on chat completions (``no-usage`` leaves ``usage`` out of the message and the events).

Token rule (the one place it is written down; ``expected_anthropic_usage(body)`` applies it):
    input_tokens  = count_tokens(system text)     (``system``: a string or text blocks; none -> 0)
                    + per message: ANTHROPIC_PER_MESSAGE_TOKENS (3) + count_tokens(text of its content)
                                   + IMAGE_PART_TOKENS (85) per non-text block
    output_tokens = count_tokens(reply)           (reply: ``"Echo: <last user text>"`` cut to max_tokens)
    cache_read_input_tokens / cache_creation_input_tokens = the request's ``fake_cache_read_tokens`` /
                    ``fake_cache_write_tokens`` (default 0), added on top of input_tokens (not taken from it)
``count_tokens`` answers ``{"input_tokens": <input_tokens above>}``.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import orjson
from aiohttp import web

from routstr.devtools.fake_http import (
    JSON_TYPE,
    STATE,
    FakeUpstreamState,
    fail_or_wait,
    new_id,
    plan_for,
    read_json,
    record,
    sse_event,
    write_sse,
)
from routstr.devtools.fake_llm import (
    FAILURE_MODELS,
    IMAGE_PART_TOKENS,
    NO_USAGE,
    ApiError,
    content_text,
    count_tokens,
    echo_reply,
    last_user_text,
    stream_pieces,
)

ANTHROPIC_PER_MESSAGE_TOKENS = 3
ANTHROPIC_ROLES = ("user", "assistant")
# Anthropic's error types by HTTP status, for the failure models (whose canned errors are OpenAI's)
_TYPES = {
    400: ("invalid_request_error", "prompt is too long: 200001 tokens > 200000 maximum"),
    401: ("authentication_error", "invalid x-api-key"),
    404: ("not_found_error", "Not found"),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit (fake upstream)."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out (fake upstream)."),
    529: ("overloaded_error", "Overloaded"),
}


def _invalid(message: str, status: int = 400) -> ApiError:
    return ApiError(status, message, _TYPES.get(status, ("invalid_request_error", ""))[0])


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_or_0(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def validate_messages(body: Any, known: Container[str], *, counting: bool = False) -> ApiError | None:
    """Anthropic's checks, in Anthropic's words; ``counting`` (count_tokens) does not need max_tokens."""
    if not isinstance(body, dict):
        return _invalid("body: Input should be a valid dictionary")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _invalid("model: Field required")
    if not counting:
        limit = body.get("max_tokens")
        if limit is None:
            return _invalid("max_tokens: Field required")
        if not _is_int(limit) or limit < 1:
            return _invalid("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if messages is None:
        return _invalid("messages: Field required")
    if not isinstance(messages, list) or not messages:
        return _invalid("messages: at least one message is required")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ANTHROPIC_ROLES:
            return _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        return _invalid("system: Input should be a valid string or a list of text blocks")
    if model not in known and model not in FAILURE_MODELS:
        return _invalid(f"model: {model}", 404)
    return None


def anthropic_input_tokens(body: dict[str, Any]) -> int:
    """The token rule of the module docstring, without the cache fields."""
    n = count_tokens(content_text(body.get("system"))[0])
    for m in body.get("messages") or ():
        if isinstance(m, dict):
            text, others = content_text(m.get("content"))
            n += ANTHROPIC_PER_MESSAGE_TOKENS + count_tokens(text) + IMAGE_PART_TOKENS * others
    return n


def anthropic_reply(body: dict[str, Any]) -> tuple[str, str]:
    """(text, stop_reason): ``"max_tokens"`` when the echo was cut, else ``"end_turn"``."""
    limit = body.get("max_tokens")
    text, cut = echo_reply(last_user_text(body.get("messages")), limit if _is_int(limit) else None)
    return text, "max_tokens" if cut else "end_turn"


def anthropic_usage(body: dict[str, Any], input_tokens: int, output_tokens: int) -> dict[str, int]:
    read, write = body.get("fake_cache_read_tokens"), body.get("fake_cache_write_tokens")
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": _int_or_0(write),
        "cache_read_input_tokens": _int_or_0(read),
        "output_tokens": output_tokens,
    }


def expected_anthropic_usage(body: dict[str, Any]) -> dict[str, int]:
    """The usage the fake reports for this ``/v1/messages`` body (non-streamed; streamed: the final one)."""
    return anthropic_usage(body, anthropic_input_tokens(body), count_tokens(anthropic_reply(body)[0]))


# -- HTTP -----------------------------------------------------------------------------------------------


def failure_error(err: ApiError) -> web.Response:
    """A failure model's canned (OpenAI) error in Anthropic's type and words for its status."""
    kind, message = _TYPES.get(err.status, ("api_error", err.message))
    return anthropic_error(ApiError(err.status, message, kind, headers=err.headers))


def anthropic_error(err: ApiError) -> web.Response:
    """Anthropic's error envelope ``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    kind, message = err.type, err.message
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": new_id("req_fake")}
    headers = {k.lower(): v for k, v in err.headers.items()}
    return web.Response(body=orjson.dumps(body), status=err.status, content_type=JSON_TYPE, headers=headers)


async def _start(request: web.Request, *, counting: bool) -> tuple[Any, web.StreamResponse | None]:
    """Count, authenticate (``x-api-key``, else Bearer), require ``anthropic-version``, parse, validate."""
    state: FakeUpstreamState = request.app[STATE]
    record(request, state)
    key = request.headers.get("x-api-key")
    if key is None and (auth := request.headers.get("Authorization", "")).startswith("Bearer "):
        key = auth[7:]  # what anthropic SDK 2.x sends for api_key=; older SDKs send x-api-key
    if state.expected_api_key is not None and key != state.expected_api_key:
        state.unauthorized += 1
        return None, anthropic_error(_invalid("invalid x-api-key", 401))
    if not request.headers.get("anthropic-version"):
        return None, anthropic_error(_invalid("anthropic-version: header is required"))
    body, bad = await read_json(request, state, anthropic_error)
    if bad is None and (invalid := validate_messages(body, state.models, counting=counting)) is not None:
        bad = anthropic_error(invalid)
    return body, bad


async def count_message_tokens(request: web.Request) -> web.StreamResponse:
    body, bad = await _start(request, counting=True)
    if bad is not None:
        return bad
    return web.Response(
        body=orjson.dumps({"input_tokens": anthropic_input_tokens(body)}), content_type=JSON_TYPE
    )


async def messages(request: web.Request) -> web.StreamResponse:
    body, bad = await _start(request, counting=False)
    if bad is not None:
        return bad
    state = request.app[STATE]
    plan = plan_for(body, body["model"])
    if (failed := await fail_or_wait(request, plan, state.timeout_s, failure_error)) is not None:
        return failed
    text, stop_reason = anthropic_reply(body)
    input_tokens = anthropic_input_tokens(body)
    output_tokens = count_tokens(text)
    usage = None if plan.behavior == NO_USAGE else anthropic_usage(body, input_tokens, output_tokens)
    message: dict[str, Any] = {
        "id": new_id("msg_fake"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [{"type": "text", "text": text}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }
    headers = {"request-id": new_id("req_fake")}
    if not plan.stream:
        if usage is not None:
            message["usage"] = usage
        return web.Response(body=orjson.dumps(message), content_type=JSON_TYPE, headers=headers)

    start = {**message, "content": [], "stop_reason": None}
    if usage is not None:
        start["usage"] = {**usage, "output_tokens": 1}  # as Anthropic: the final count comes in message_delta
    head = [
        sse_event("message_start", {"type": "message_start", "message": start}),
        sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        sse_event("ping", {"type": "ping"}),
    ]
    deltas = [
        sse_event(
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
        )
        for piece in stream_pieces(text)
    ]
    delta: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": None},
    }
    if usage is not None:
        delta["usage"] = {"output_tokens": output_tokens}
    tail = [
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse_event("message_delta", delta),
        sse_event("message_stop", {"type": "message_stop"}),
    ]
    return await write_sse(request, head, deltas, tail, plan)
