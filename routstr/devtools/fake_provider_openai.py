"""The fake provider's OpenAI routes: chat completions, legacy completions and the Responses API.

Rules (tokens, directives, output lengths) in :mod:`routstr.devtools.fake_provider_model`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web

from routstr.devtools.fake_provider_http import (
    Event,
    drop,
    json_response,
    named_sse,
    new_id,
    now,
    openai_error,
    read_request,
    sse,
    write_stream,
)
from routstr.devtools.fake_provider_model import (
    SEARCH_RESULT,
    arguments,
    chat_prompt_tokens,
    completion_prompts,
    directives,
    function_tool,
    int_field,
    output_length,
    pieces,
    responses_prompt_tokens,
    searches,
    surcharges,
    words,
)


def openai_usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _extras(body: dict[str, Any]) -> dict[str, Any]:
    """The service tier echoed back, and the marker of what a real provider would bill on top."""
    out: dict[str, Any] = {
        "service_tier": "priority" if body.get("service_tier") == "priority" else "default"
    }
    if s := surcharges(body):
        out["fake_surcharges"] = s
    return out


def _citations(body: dict[str, Any]) -> list[dict[str, Any]]:
    if not searches(body):
        return []
    return [{"type": "url_citation", "url_citation": {**SEARCH_RESULT, "start_index": 0, "end_index": 4}}]


async def chat_completions(request: web.Request) -> web.StreamResponse:
    got = await read_request(request)
    if isinstance(got, web.StreamResponse):
        return got
    body, raw = got
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return openai_error(400, "Invalid 'messages': expected an array with minimum length 1.")
    d = directives(raw)
    per, hit = output_length(int_field(body, "max_completion_tokens", "max_tokens"), d)
    n = int_field(body, "n") or 1
    tool = function_tool(body)
    text = arguments(per) if tool else words(per)
    usage = openai_usage(chat_prompt_tokens(body), n * per)
    finish = "length" if hit else "tool_calls" if tool else "stop"
    head: dict[str, Any] = {"id": new_id("chatcmpl-"), "created": now(), "model": body["model"]}
    head.update(_extras(body))
    call = {"id": new_id("call_"), "type": "function", "function": {"name": tool, "arguments": text}}
    if body.get("stream") is not True:
        if d.cut is not None:
            drop(request)
            return web.Response()
        message: dict[str, Any] = {"role": "assistant", "content": None if tool else text, "refusal": None}
        message["annotations"] = _citations(body)
        if tool:
            message["tool_calls"] = [call]
        choices = [
            {"index": i, "message": message, "finish_reason": finish, "logprobs": None} for i in range(n)
        ]
        return json_response({**head, "object": "chat.completion", "choices": choices, "usage": usage})
    wants_usage = (body.get("stream_options") or {}).get("include_usage") is True
    head["object"] = "chat.completion.chunk"
    if wants_usage:
        head["usage"] = None

    def chunk(i: int, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": i, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return sse({**head, "choices": [choice]})

    def events() -> Iterator[Event]:
        for i in range(n):
            opening: dict[str, Any] = {"role": "assistant", "content": None if tool else ""}
            if tool:
                opening["tool_calls"] = [{"index": 0, **call, "function": {"name": tool, "arguments": ""}}]
            yield chunk(i, opening), 0
        for piece in pieces(text):
            for i in range(n):
                delta = (
                    {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                    if tool
                    else {"content": piece}
                )
                yield chunk(i, delta), len(piece) // 4
        for i in range(n):
            yield chunk(i, {}, finish), 0
        if wants_usage:
            yield sse({**head, "choices": [], "usage": usage}), 0
        yield b"data: [DONE]\n\n", 0

    return await write_stream(request, events(), d)


async def completions(request: web.Request) -> web.StreamResponse:
    got = await read_request(request)
    if isinstance(got, web.StreamResponse):
        return got
    body, raw = got
    if not isinstance(body.get("prompt"), str | list):
        return openai_error(400, "Missing required parameter: 'prompt'.")
    d = directives(raw)
    per, hit = output_length(int_field(body, "max_tokens"), d)
    prompts = completion_prompts(body["prompt"])
    n = int_field(body, "n") or 1
    best_of = int_field(body, "best_of") or n
    stream = body.get("stream") is True
    if best_of < n:
        return openai_error(400, "best_of must be greater than or equal to n.")
    if stream and best_of > n:  # OpenAI: best_of results cannot be streamed
        return openai_error(400, "Cannot stream results with best_of greater than n.")
    text = words(per)
    # like OpenAI: best_of answers are generated per prompt (all billed), n of them returned
    usage = openai_usage(sum(prompts), len(prompts) * best_of * per)
    finish = "length" if hit else "stop"
    head: dict[str, Any] = {"id": new_id("cmpl-"), "object": "text_completion", "created": now()}
    head.update(model=body["model"], **_extras(body))
    count = len(prompts) * n
    if not stream:
        if d.cut is not None:
            drop(request)
            return web.Response()
        choices = [
            {"index": i, "text": text, "finish_reason": finish, "logprobs": None} for i in range(count)
        ]
        return json_response({**head, "choices": choices, "usage": usage})
    wants_usage = (body.get("stream_options") or {}).get("include_usage") is True

    def chunk(i: int, piece: str, finish_reason: str | None = None) -> bytes:
        choice = {"index": i, "text": piece, "finish_reason": finish_reason, "logprobs": None}
        return sse({**head, "choices": [choice], **({"usage": None} if wants_usage else {})})

    def events() -> Iterator[Event]:
        for piece in pieces(text):
            for i in range(count):
                yield chunk(i, piece), len(piece) // 4
        for i in range(count):
            yield chunk(i, "", finish), 0
        if wants_usage:
            yield sse({**head, "choices": [], "usage": usage}), 0
        yield b"data: [DONE]\n\n", 0

    return await write_stream(request, events(), d)


def _response(body: dict[str, Any], rid: str, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": now(),
        "status": status,
        "background": body.get("background") is True,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body["model"],
        "output": output,
        "previous_response_id": body.get("previous_response_id"),
        "tools": body.get("tools") or [],
        "usage": usage,
        **_extras(body),
    }


async def responses(request: web.Request) -> web.StreamResponse:
    got = await read_request(request)
    if isinstance(got, web.StreamResponse):
        return got
    body, raw = got
    rid = new_id("resp_")
    if body.get("background") is True:  # queued: it runs later, and nothing says what it used
        return json_response(_response(body, rid, "queued", [], None))
    if not isinstance(body.get("input"), str | list):
        return openai_error(400, "Missing required parameter: 'input'.")
    d = directives(raw)
    per, hit = output_length(int_field(body, "max_output_tokens"), d)
    tool = function_tool(body)
    text = arguments(per) if tool else words(per)
    prompt = responses_prompt_tokens(body)
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": per,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + per,
    }
    status = "incomplete" if hit else "completed"
    search = [
        {"type": "web_search_call", "id": new_id("ws_"), "status": "completed", "action": {"type": "search"}}
        for _ in range(searches(body))
    ]
    iid = new_id("fc_" if tool else "msg_")
    item: dict[str, Any]
    if tool:
        item = {"type": "function_call", "id": iid, "call_id": new_id("call_"), "name": tool}
        item.update(arguments=text, status="completed")
    else:
        cites = (
            [{"type": "url_citation", **SEARCH_RESULT, "start_index": 0, "end_index": 4}] if search else []
        )
        part = {"type": "output_text", "text": text, "annotations": cites}
        item = {"type": "message", "id": iid, "status": status, "role": "assistant", "content": [part]}
    final = _response(body, rid, status, [*search, item], usage)
    if body.get("stream") is not True:
        if d.cut is not None:
            drop(request)
            return web.Response()
        return json_response(final)
    seq = iter(range(10**9))

    def ev(name: str, tokens: int = 0, **fields: Any) -> Event:
        return named_sse(name, {"type": name, "sequence_number": next(seq), **fields}), tokens

    def events() -> Iterator[Event]:
        started = _response(body, rid, "in_progress", [], None)
        yield ev("response.created", response=started)
        yield ev("response.in_progress", response=started)
        for i, call in enumerate(search):
            yield ev("response.output_item.added", output_index=i, item={**call, "status": "in_progress"})
            yield ev("response.web_search_call.completed", output_index=i, item_id=call["id"])
            yield ev("response.output_item.done", output_index=i, item=call)
        at: dict[str, Any] = {"item_id": iid, "output_index": len(search)}
        if tool:
            yield ev("response.output_item.added", output_index=len(search), item={**item, "arguments": ""})
            for piece in pieces(text):
                yield ev("response.function_call_arguments.delta", len(piece) // 4, **at, delta=piece)
            yield ev("response.function_call_arguments.done", **at, arguments=text)
        else:
            empty = {**item, "status": "in_progress", "content": []}
            yield ev("response.output_item.added", output_index=len(search), item=empty)
            part = {"type": "output_text", "text": "", "annotations": []}
            yield ev("response.content_part.added", **at, content_index=0, part=part)
            for piece in pieces(text):
                yield ev("response.output_text.delta", len(piece) // 4, **at, content_index=0, delta=piece)
            yield ev("response.output_text.done", **at, content_index=0, text=text)
            yield ev("response.content_part.done", **at, content_index=0, part=item["content"][0])
        yield ev("response.output_item.done", output_index=len(search), item=item)
        yield ev(f"response.{status}", response=final)

    return await write_stream(request, events(), d)
