"""Anthropic Messages ⇄ OpenAI chat completions, for Anthropic clients on OpenAI-type upstreams: the
translation between the client side of ``dialects/anthropic.py`` and the upstream side of
``dialects/openai_chat.py`` (``TO_CHAT``).

Text, images, tools (tool_use / tool_result) and streams are translated; parts with no counterpart
(e.g. thinking blocks sent back by a client) are dropped from the request.
"""

from __future__ import annotations

from typing import Any

import orjson

from routstr.core.usage import Usage
from routstr.dialects.anthropic import from_usage

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text"]
    return "".join(p for p in parts if isinstance(p, str))


def _image(block: dict[str, Any]) -> dict[str, Any] | None:
    src = block.get("source")
    if not isinstance(src, dict):
        return None
    if src.get("type") == "base64":
        url = f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"
    elif src.get("type") == "url":
        url = str(src.get("url", ""))
    else:
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _user_messages(content: Any) -> list[dict[str, Any]]:
    """A user turn: tool results first (they answer the previous assistant turn), then the rest."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for b in content or ():
        if not isinstance(b, dict):
            continue
        if b.get("type") == "tool_result":
            tools.append(
                {"role": "tool", "tool_call_id": b.get("tool_use_id", ""), "content": _text(b.get("content"))}
            )
        elif b.get("type") == "text":
            parts.append({"type": "text", "text": b.get("text", "")})
        elif b.get("type") == "image" and (img := _image(b)) is not None:
            parts.append(img)
    if parts:
        only_text = all(p["type"] == "text" for p in parts)
        tools.append({"role": "user", "content": "".join(p["text"] for p in parts) if only_text else parts})
    return tools


def _assistant_message(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    calls = [
        {
            "id": b.get("id", ""),
            "type": "function",
            "function": {"name": b.get("name", ""), "arguments": orjson.dumps(b.get("input") or {}).decode()},
        }
        for b in content or ()
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    msg: dict[str, Any] = {"role": "assistant", "content": _text(content) or None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _tool_choice(choice: Any) -> Any:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name", "")}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(kind or "", "auto")


def request_to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI chat completions request."""
    messages: list[dict[str, Any]] = []
    system = _text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for m in body.get("messages") or ():
        if not isinstance(m, dict):
            continue
        if m.get("role") == "assistant":
            messages.append(_assistant_message(m.get("content")))
        else:
            messages.extend(_user_messages(m.get("content")))
    out: dict[str, Any] = {"model": body["model"], "messages": messages, "max_tokens": body.get("max_tokens")}
    for key in ("temperature", "top_p", "stream"):
        if key in body:
            out[key] = body[key]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object", "properties": {}},
                },
            }
            for t in tools
            if isinstance(t, dict)
        ]
        if "tool_choice" in body:
            out["tool_choice"] = _tool_choice(body["tool_choice"])
    return out


def _tool_input(arguments: Any) -> Any:
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) and arguments else {}
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def message_from_chat(obj: dict[str, Any], model: str, usage: Usage | None) -> dict[str, Any]:
    """A chat completion as an Anthropic message."""
    choice = (obj.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    text = msg.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": fn.get("name", ""),
                "input": _tool_input(fn.get("arguments")),
            }
        )
    return {
        "id": "msg_" + str(obj.get("id", "")).removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": from_usage(usage),
    }


def sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps({"type": event, **data}) + b"\n\n"


class StreamToAnthropic:
    """Chat completion chunks in, Anthropic stream events out (message_start … message_stop)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = False
        self.index = -1  # the content block now open (-1: none)
        self.open_kind = ""  # "text" or "tool"
        self.tool_index: int | None = None  # the chat tool_calls index of the open tool block
        self.stop_reason = "end_turn"

    def feed(self, events: bytes) -> bytes:
        out: list[bytes] = []
        for ev in events.split(b"\n\n"):
            if not ev.startswith(b"data:"):
                continue
            try:
                chunk = orjson.loads(ev[5:].strip())
            except orjson.JSONDecodeError:
                continue
            if isinstance(chunk, dict):
                out.extend(self._chunk(chunk))
        return b"".join(out)

    def _start(self, chunk: dict[str, Any]) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: dict[str, Any] = {
            "id": "msg_" + str(chunk.get("id", "")).removeprefix("chatcmpl-"),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [sse("message_start", {"message": message})]

    def _close(self) -> list[bytes]:
        if self.index < 0 or not self.open_kind:
            return []
        self.open_kind = ""
        return [sse("content_block_stop", {"index": self.index})]

    def _chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        out = self._start(chunk)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                if self.open_kind != "text":
                    out += self._close()
                    self.index += 1
                    self.open_kind = "text"
                    out.append(
                        sse(
                            "content_block_start",
                            {"index": self.index, "content_block": {"type": "text", "text": ""}},
                        )
                    )
                out.append(
                    sse(
                        "content_block_delta",
                        {"index": self.index, "delta": {"type": "text_delta", "text": text}},
                    )
                )
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                if self.open_kind != "tool" or call.get("index") != self.tool_index:
                    out += self._close()
                    self.index += 1
                    self.open_kind, self.tool_index = "tool", call.get("index")
                    block = {
                        "type": "tool_use",
                        "id": call.get("id", ""),
                        "name": fn.get("name", ""),
                        "input": {},
                    }
                    out.append(sse("content_block_start", {"index": self.index, "content_block": block}))
                if fn.get("arguments"):
                    delta_json = {"type": "input_json_delta", "partial_json": fn["arguments"]}
                    out.append(sse("content_block_delta", {"index": self.index, "delta": delta_json}))
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self, usage: Usage | None, cost: dict[str, Any]) -> bytes:
        """The closing events: the last block's stop, the usage (with the cost), message_stop."""
        out = self._start({}) + self._close()
        u: dict[str, Any] = {**from_usage(usage), "cost": cost, "cost_sats": cost.get("sats")}
        out.append(
            sse(
                "message_delta",
                {"delta": {"stop_reason": self.stop_reason, "stop_sequence": None}, "usage": u},
            )
        )
        out.append(sse("message_stop", {}))
        return b"".join(out)


class AnthropicViaChat:
    """The translation the adapter table puts between an Anthropic client and a chat upstream."""

    def to_upstream(self, body: dict[str, Any]) -> dict[str, Any]:
        return request_to_chat(body)

    def from_upstream(self, obj: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
        return message_from_chat(obj, str(obj.get("model", "")), usage)

    def stream(self, model: str) -> StreamToAnthropic:
        return StreamToAnthropic(model)


TO_CHAT = AnthropicViaChat()
