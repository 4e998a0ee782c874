"""The fake provider's Anthropic route: ``POST /v1/messages``, as Anthropic answers it.

What a node may not expect and Anthropic does: ``message_start`` carries ``usage`` with the input tokens and
``output_tokens: 1``; the real output count comes only in ``message_delta`` at the end (a reader that
stops before it has seen one token of usage). Tool arguments stream as ``input_json_delta`` pieces; the
``web_search_*`` server tool runs a search (``server_tool_use`` / ``web_search_tool_result`` blocks,
``usage.server_tool_use.web_search_requests``). Rules in :mod:`routstr.devtools.fake_provider_model`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from routstr.devtools.fake_provider_http import (
    Event,
    anthropic_error,
    drop,
    json_response,
    named_sse,
    new_id,
    read_request,
    write_stream,
)
from routstr.devtools.fake_provider_model import (
    SEARCH_RESULT,
    anthropic_prompt_tokens,
    arguments,
    directives,
    function_tool,
    int_field,
    output_length,
    pieces,
    searches,
    surcharges,
    words,
)


def _search_blocks(n: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for _ in range(n):
        tid = new_id("srvtoolu_")
        blocks.append(
            {"type": "server_tool_use", "id": tid, "name": "web_search", "input": {"query": "fake"}}
        )
        result = {"type": "web_search_result", **SEARCH_RESULT, "encrypted_content": "", "page_age": None}
        blocks.append({"type": "web_search_tool_result", "tool_use_id": tid, "content": [result]})
    return blocks


async def messages(request: web.Request) -> web.StreamResponse:
    got = await read_request(request, anthropic=True)
    if isinstance(got, web.StreamResponse):
        return got
    body, raw = got
    limit = int_field(body, "max_tokens")
    if limit is None or limit < 1:
        return anthropic_error(400, "max_tokens: Field required")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return anthropic_error(400, "messages: at least one message is required")
    d = directives(raw)
    per, hit = output_length(limit, d)
    tool = function_tool(body)
    text = arguments(per) if tool else words(per)
    n_search = searches(body)
    usage: dict[str, Any] = {
        "input_tokens": anthropic_prompt_tokens(body),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": per,
        "service_tier": "priority" if body.get("service_tier") == "priority" else "standard",
    }
    if n_search:
        usage["server_tool_use"] = {"web_search_requests": n_search}
    stop_reason = "max_tokens" if hit else "tool_use" if tool else "end_turn"
    searched = _search_blocks(n_search)
    main: dict[str, Any] = (
        {"type": "tool_use", "id": new_id("toolu_"), "name": tool, "input": orjson.loads(text or "{}")}
        if tool
        else {"type": "text", "text": text}
    )
    message: dict[str, Any] = {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [*searched, main],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if s := surcharges(body):
        message["fake_surcharges"] = s
    if body.get("stream") is not True:
        if d.cut is not None:
            drop(request)
            return web.Response()
        return json_response(message, headers={"request-id": new_id("req_")})

    def ev(name: str, tokens: int = 0, **fields: Any) -> Event:
        return named_sse(name, {"type": name, **fields}), tokens

    def events() -> Iterator[Event]:
        start_usage = {**usage, "output_tokens": 1}
        start_usage.pop("server_tool_use", None)
        start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
        yield ev("message_start", message=start)
        for i, block in enumerate(searched):
            if block["type"] == "server_tool_use":
                yield ev("content_block_start", index=i, content_block={**block, "input": {}})
                delta = {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}
                yield ev("content_block_delta", index=i, delta=delta)
            else:
                yield ev("content_block_start", index=i, content_block=block)
            yield ev("content_block_stop", index=i)
        k = len(searched)
        yield ev(
            "content_block_start",
            index=k,
            content_block={**main, "input": {}} if tool else {**main, "text": ""},
        )
        yield ev("ping")
        for piece in pieces(text):
            delta = (
                {"type": "input_json_delta", "partial_json": piece}
                if tool
                else {"type": "text_delta", "text": piece}
            )
            yield ev("content_block_delta", len(piece) // 4, index=k, delta=delta)
        yield ev("content_block_stop", index=k)
        final: dict[str, Any] = {"output_tokens": per}
        if n_search:
            final["server_tool_use"] = usage["server_tool_use"]
        yield ev("message_delta", delta={"stop_reason": stop_reason, "stop_sequence": None}, usage=final)
        yield ev("message_stop")

    return await write_stream(request, events(), d)
