"""``POST /v1/completions``, ``/v1/embeddings`` and ``/v1/responses``: OpenAI's other metered routes.

Replies and usage come from :mod:`routstr.devtools.fake_llm_openai`; failures and ``fake_delay_ms`` from
:mod:`routstr.devtools.fake_http`, exactly as on chat completions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from routstr.devtools.fake_http import (
    JSON_TYPE,
    STATE,
    FakeUpstreamState,
    Plan,
    check_bearer,
    fail_or_wait,
    new_id,
    openai_error,
    plan_for,
    read_json,
    sse_data,
    sse_event,
    write_sse,
)
from routstr.devtools.fake_llm import NO_USAGE, ApiError, count_tokens, prompt_tokens, stream_pieces
from routstr.devtools.fake_llm_openai import (
    EMBEDDING_DIMENSIONS,
    completion_replies,
    embedding_base64,
    embedding_inputs,
    embedding_vector,
    expected_completion_usage,
    responses_messages,
    responses_reply,
    responses_usage,
    validate_completion,
    validate_embeddings,
    validate_responses,
)

Validator = Callable[[Any, FakeUpstreamState], ApiError | None]


async def _start(
    request: web.Request, validate: Validator
) -> tuple[dict[str, Any], Plan, web.StreamResponse | None]:
    """Auth, parse, validate and the failure models: (body, plan, None) when a normal answer is due."""
    state = request.app[STATE]
    if (denied := check_bearer(request, state)) is not None:
        return {}, Plan("", None, False), denied
    body, bad = await read_json(request, state, openai_error)
    if bad is None and (invalid := validate(body, state)) is not None:
        bad = openai_error(invalid)
    if bad is not None:
        return {}, Plan("", None, False), bad
    plan = plan_for(body, body["model"])
    return body, plan, await fail_or_wait(request, plan, state.timeout_s, openai_error)


async def completions(request: web.Request) -> web.StreamResponse:
    body, plan, early = await _start(request, lambda b, s: validate_completion(b, s.models))
    if early is not None:
        return early
    replies = completion_replies(body)
    usage = None if plan.behavior == NO_USAGE else expected_completion_usage(body)
    base: dict[str, Any] = {
        "id": new_id("cmpl-fake"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": body["model"],
        "system_fingerprint": "fp_fake",
    }
    if not plan.stream:
        choices = [
            {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
            for i, (text, finish) in enumerate(replies)
        ]
        out = {**base, "choices": choices} | ({"usage": usage} if usage is not None else {})
        return web.Response(body=orjson.dumps(out), content_type=JSON_TYPE)
    opts = body.get("stream_options")
    if not (isinstance(opts, dict) and opts.get("include_usage") is True):
        usage = None
    elif usage is not None:
        base["usage"] = None  # null on every chunk but the last, as OpenAI does

    def chunk(i: int, text: str, finish: str | None = None) -> bytes:
        choice = {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
        return sse_data({**base, "choices": [choice]})

    deltas = [chunk(i, piece) for i, (text, _) in enumerate(replies) for piece in stream_pieces(text)]
    tail = [chunk(i, "", finish) for i, (_, finish) in enumerate(replies)]
    if usage is not None:
        tail.append(sse_data({**base, "choices": [], "usage": usage}))
    tail.append(b"data: [DONE]\n\n")
    return await write_sse(request, [], deltas, tail, plan)


async def embeddings(request: web.Request) -> web.StreamResponse:
    body, plan, early = await _start(request, lambda b, s: validate_embeddings(b, s.models))
    if early is not None:
        return early
    dims = body.get("dimensions") or EMBEDDING_DIMENSIONS
    as_b64 = body.get("encoding_format") == "base64"
    data = []
    prompt = 0
    for i, item in enumerate(embedding_inputs(body)):
        vector = embedding_vector(item, dims)
        data.append(
            {"object": "embedding", "index": i, "embedding": embedding_base64(vector) if as_b64 else vector}
        )
        prompt += count_tokens(item) if isinstance(item, str) else len(item)
    out: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
    if plan.behavior != NO_USAGE:
        out["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
    return web.Response(body=orjson.dumps(out), content_type=JSON_TYPE)


async def responses(request: web.Request) -> web.StreamResponse:
    body, plan, early = await _start(request, lambda b, s: validate_responses(b, s.models))
    if early is not None:
        return early
    text, truncated = responses_reply(body)
    usage = None
    if plan.behavior != NO_USAGE:
        usage = responses_usage(prompt_tokens(responses_messages(body)), count_tokens(text))
    resp_id, msg_id = new_id("resp_fake"), new_id("msg_fake")
    status = "incomplete" if truncated else "completed"
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    message = {"id": msg_id, "type": "message", "status": status, "role": "assistant", "content": [part]}
    final = _response_object(body, resp_id, status, [message], usage)
    if not plan.stream:
        return web.Response(body=orjson.dumps(final), content_type=JSON_TYPE)

    seq = iter(range(1_000_000))

    def event(name: str, **fields: Any) -> bytes:
        return sse_event(name, {"type": name, "sequence_number": next(seq), **fields})

    started = _response_object(body, resp_id, "in_progress", [], None)
    where = {"item_id": msg_id, "output_index": 0, "content_index": 0}
    head = [
        event("response.created", response=started),
        event("response.in_progress", response=started),
        event(
            "response.output_item.added",
            output_index=0,
            item={**message, "status": "in_progress", "content": []},
        ),
        event("response.content_part.added", **where, part={**part, "text": ""}),
    ]
    deltas = [event("response.output_text.delta", **where, delta=p, logprobs=[]) for p in stream_pieces(text)]
    tail = [
        event("response.output_text.done", **where, text=text, logprobs=[]),
        event("response.content_part.done", **where, part=part),
        event("response.output_item.done", output_index=0, item=message),
        event(f"response.{status}", response=final),  # response.completed, or .incomplete when cut short
    ]
    return await write_sse(request, head, deltas, tail, plan)


def _response_object(
    body: dict[str, Any], resp_id: str, status: str, output: list[Any], usage: dict[str, Any] | None
) -> dict[str, Any]:
    """A Responses API ``response`` object with the fields the SDK and the node may read."""
    return {
        "id": resp_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }
