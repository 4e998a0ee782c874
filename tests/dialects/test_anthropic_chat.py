"""Anthropic Messages ⇄ OpenAI chat: requests, answers and streams, tools included."""

from __future__ import annotations

import orjson

from routstr.core.usage import Usage
from routstr.dialects.anthropic_chat import StreamToAnthropic, message_from_chat, request_to_chat


def test_request_with_system_images_tools_and_tool_results():
    body = {
        "model": "m",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be kind."}],
        "stop_sequences": ["END"],
        "tools": [{"name": "weather", "description": "Weather now", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is this? "},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA="}},
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "tu_1", "name": "weather", "input": {"city": "Oslo"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": "-3 C"}]},
                {"type": "text", "text": "Thanks"},
            ]},
        ],
    }  # fmt: skip
    chat = request_to_chat(body)
    assert chat["stop"] == ["END"] and chat["max_tokens"] == 100 and chat["tool_choice"] == "required"
    assert chat["tools"][0]["function"] == {
        "name": "weather",
        "description": "Weather now",
        "parameters": {"type": "object"},
    }
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert chat["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAA="},
    }
    call = chat["messages"][2]["tool_calls"][0]
    assert call["id"] == "tu_1" and orjson.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "tu_1", "content": "-3 C"}
    assert chat["messages"][4] == {"role": "user", "content": "Thanks"}


def test_answer_with_a_tool_call():
    chat = {
        "id": "chatcmpl-abc",
        "choices": [{"finish_reason": "tool_calls", "message": {"content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}
        ]}}],
    }  # fmt: skip
    msg = message_from_chat(chat, "m", Usage(120, 9, cached_tokens=100))
    assert msg["id"] == "msg_abc" and msg["stop_reason"] == "tool_use"
    assert msg["content"] == [{"type": "tool_use", "id": "c1", "name": "weather", "input": {"city": "Oslo"}}]
    assert msg["usage"] == {
        "input_tokens": 20,
        "output_tokens": 9,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 0,
    }


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def test_stream_of_text_then_a_tool_call():
    t = StreamToAnthropic("m")
    out = t.feed(_chunk({"role": "assistant", "content": ""}) + _chunk({"content": "Hi"}))
    out += t.feed(
        _chunk({"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "w", "arguments": '{"ci'}}]})
    )
    out += t.feed(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":1}'}}]}, "tool_calls"))
    out += t.finish(Usage(5, 4), {"msats": 7, "sats": 0.007})
    events = [orjson.loads(e.split(b"\ndata: ", 1)[1]) for e in out.split(b"\n\n") if e]
    kinds = [e["type"] for e in events]
    assert kinds == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert events[4]["content_block"] == {"type": "tool_use", "id": "c1", "name": "w", "input": {}}
    assert events[5]["delta"]["partial_json"] + events[6]["delta"]["partial_json"] == '{"city":1}'
    assert events[8]["delta"]["stop_reason"] == "tool_use"
    assert events[8]["usage"]["output_tokens"] == 4 and events[8]["usage"]["cost"]["msats"] == 7
