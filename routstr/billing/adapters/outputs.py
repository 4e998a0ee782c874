"""What an answer delivered, in bytes, for the estimate of an answer that came without usage (a cut
stream): everything the client received that a provider bills as output — text, reasoning, refusals,
tool-call names and arguments — in each dialect's own shape. Hidden reasoning never reaches the node,
so it cannot be counted; everything visible is.
"""

from __future__ import annotations

from typing import Any

import orjson


def _s(v: Any) -> int:
    return len(v.encode()) if isinstance(v, str) else 0


def _json(v: Any) -> int:
    if v is None or v == {}:
        return 0
    return _s(v) if isinstance(v, str) else len(orjson.dumps(v))


def chat_part_bytes(part: Any) -> int:
    """A chat choice's ``delta`` (stream) or ``message`` (whole answer)."""
    if not isinstance(part, dict):
        return 0
    content = part.get("content")
    n = _s(content)
    if isinstance(content, list):
        n += sum(_s(p.get("text")) for p in content if isinstance(p, dict))
    n += _s(part.get("reasoning_content")) + _s(part.get("reasoning")) + _s(part.get("refusal"))
    for call in part.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            n += _s(fn.get("name")) + _s(fn.get("arguments"))
        elif isinstance(call, dict) and isinstance(call.get("custom"), dict):
            n += _s(call["custom"].get("name")) + _s(call["custom"].get("input"))
    fc = part.get("function_call")
    if isinstance(fc, dict):
        n += _s(fc.get("name")) + _s(fc.get("arguments"))
    return n


def responses_event_bytes(event: dict[str, Any]) -> int:
    """A Responses stream event: every ``*.delta`` (text, refusal, reasoning, tool arguments), and the
    name of a tool call when its item is added."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return 0
    if kind.endswith(".delta"):
        return _s(event.get("delta"))
    if kind == "response.output_item.added":
        item = event.get("item")
        return _s(item.get("name")) if isinstance(item, dict) else 0
    return 0


def responses_output_bytes(output: Any) -> int:
    """The ``output`` items of a whole Responses answer."""
    n = 0
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        n += _s(item.get("name")) + _s(item.get("arguments")) + _s(item.get("input"))
        for part in (item.get("content") or []) + (item.get("summary") or []):
            if isinstance(part, dict):
                n += _s(part.get("text")) + _s(part.get("refusal"))
    return n


def anthropic_event_bytes(event: dict[str, Any]) -> int:
    """An Anthropic stream event: text, thinking and tool input deltas, and a tool call's name."""
    kind = event.get("type")
    if kind == "content_block_delta":
        delta = event.get("delta")
        if isinstance(delta, dict):
            return _s(delta.get("text")) + _s(delta.get("partial_json")) + _s(delta.get("thinking"))
        return 0
    if kind == "content_block_start":
        return anthropic_content_bytes([event.get("content_block")])
    return 0


def anthropic_content_bytes(content: Any) -> int:
    """The ``content`` blocks of a whole Anthropic answer."""
    n = 0
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict):
            n += _s(block.get("text")) + _s(block.get("thinking")) + _s(block.get("name"))
            n += _json(block.get("input"))
    return n
