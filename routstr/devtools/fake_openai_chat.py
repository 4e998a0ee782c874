"""OpenAI's model listing and ``POST /v1/chat/completions``: the routes the node was built around."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from routstr.devtools.fake_http import (
    JSON_TYPE,
    MODELS_BODY,
    STATE,
    FakeUpstreamState,
    check_bearer,
    fail_or_wait,
    new_id,
    openai_error,
    plan_for,
    read_json,
    sse_data,
    write_sse,
)
from routstr.devtools.fake_llm import (
    FAILURE_MODELS,
    NO_USAGE,
    ApiError,
    FakeModel,
    count_tokens,
    make_usage,
    model_not_found,
    prompt_tokens,
    reply_for,
    stream_pieces,
    validate_chat,
)


def models_body(state: FakeUpstreamState) -> bytes:
    """``GET /v1/models``, serialised once per app."""
    data = [m.to_json() for m in state.models.values()]
    if state.include_failure_models:
        data += [FakeModel(name, owned_by="fake-failures").to_json() for name in FAILURE_MODELS]
    return orjson.dumps({"object": "list", "data": data})


async def list_models(request: web.Request) -> web.Response:
    if (denied := check_bearer(request, request.app[STATE])) is not None:
        return denied
    return web.Response(body=request.app[MODELS_BODY], content_type=JSON_TYPE)


async def get_model(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if (denied := check_bearer(request, state)) is not None:
        return denied
    model_id = request.match_info["model"]
    model = state.models.get(model_id)
    if model is None and model_id in FAILURE_MODELS:
        model = FakeModel(model_id, owned_by="fake-failures")
    if model is None:
        return openai_error(model_not_found(model_id))
    return web.Response(body=orjson.dumps(model.to_json()), content_type=JSON_TYPE)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if (denied := check_bearer(request, state)) is not None:
        return denied
    body, bad = await read_json(request, state, openai_error)
    if bad is not None:
        return bad
    if (invalid := validate_chat(body, state.models)) is not None:
        return openai_error(invalid)
    model: str = body["model"]
    plan = plan_for(body, model)
    if (failed := await fail_or_wait(request, plan, state.timeout_s, openai_error)) is not None:
        return failed

    text, finish = reply_for(body)
    no_usage = plan.behavior == NO_USAGE
    usage = None if no_usage else make_usage(prompt_tokens(body["messages"]), count_tokens(text))
    if plan.stream:
        opts = body.get("stream_options")
        include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
        head, deltas, tail = _chunks(model, text, finish, usage if include_usage else None)
        return await write_sse(request, head, deltas, tail, plan)
    return web.Response(body=_completion(model, text, finish, usage), content_type=JSON_TYPE)


def _completion(model: str, text: str, finish: str, usage: dict[str, Any] | None) -> bytes:
    out: dict[str, Any] = {
        "id": new_id("chatcmpl-fake"),
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


def _chunks(
    model: str, text: str, finish: str, usage: dict[str, Any] | None
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """SSE like OpenAI: role delta | content deltas | finish chunk, [usage chunk], ``[DONE]``."""
    base: dict[str, Any] = {
        "id": new_id("chatcmpl-fake"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
    }
    if usage is not None:
        base["usage"] = None  # OpenAI sends "usage": null on every chunk but the last when asked for usage

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse_data({**base, "choices": [choice]})

    head = [chunk({"role": "assistant", "content": "", "refusal": None})]
    deltas = [chunk({"content": piece}) for piece in stream_pieces(text)]
    tail = [chunk({}, finish)]
    if usage is not None:
        tail.append(sse_data({**base, "choices": [], "usage": usage}))
    tail.append(b"data: [DONE]\n\n")
    return head, deltas, tail


async def not_found(request: web.Request) -> web.Response:
    if (denied := check_bearer(request, request.app[STATE])) is not None:
        return denied
    return openai_error(ApiError(404, f"Invalid URL ({request.method} {request.path})", code="unknown_url"))
