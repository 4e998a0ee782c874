"""OpenAI Responses API (``POST /v1/responses``): both sides.

Usage: ``input_tokens``/``output_tokens`` with the same details as chat's. It comes in the response
object, or in the stream's final event (``response.completed``, or ``response.incomplete`` when the
output limit cut it, or ``response.failed``), which also carries the whole answer: that event is held
back, settled, and sent last with the cost in it.
"""

from __future__ import annotations

from typing import Any

from routstr.core.errors import InvalidRequest
from routstr.core.usage import Usage
from routstr.dialects.cost import put_cost
from routstr.dialects.fields import (
    Sent,
    as_list,
    check_tier,
    count_at,
    has_counts,
    positive_int,
    require_model,
    str_bytes,
    stream_flag,
    unbounded,
    unpriced,
)
from routstr.dialects.sides import RequestFacts

FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# tool types the client runs itself: their calls and results are ordinary tokens
CLIENT_TOOLS = frozenset(
    {"function", "custom", "local_shell", "shell", "apply_patch", "computer_use_preview"}
)


def to_usage(u: Any) -> Usage | None:
    """The canonical ``Usage`` of a Responses ``usage`` object (None: the answer reported none)."""
    if not has_counts(u, "input_tokens", "output_tokens"):
        return None
    return Usage(
        prompt_tokens=count_at(u, "input_tokens"),
        completion_tokens=count_at(u, "output_tokens"),
        cached_tokens=count_at(u, "input_tokens_details", "cached_tokens"),
        reasoning_tokens=count_at(u, "output_tokens_details", "reasoning_tokens"),
    )


# --- the client side -----------------------------------------------------------------------------


def inputs(body: dict[str, Any]) -> Sent:
    """What a Responses request sends; refuses stored content (unbounded), background runs and
    built-in tools (unpriced)."""
    for name, what in (
        ("previous_response_id", "A stored response"),
        ("conversation", "A stored conversation"),
        ("prompt", "A stored prompt"),
    ):
        if body.get(name) is not None:
            raise unbounded(what, name)
    if body.get("background"):
        raise unpriced("A background response", "background")
    check_tier(body)
    sent = Sent()
    for tool in as_list(body.get("tools")):
        if isinstance(tool, dict) and tool.get("type") not in CLIENT_TOOLS:
            raise unpriced(f"The built-in tool {tool.get('type')!r}", "tools")
    sent.json(body.get("tools"))
    sent.text(body.get("instructions"))
    text = body.get("text")
    if isinstance(text, dict):
        sent.json(text.get("format"))
    given = body.get("input")
    if isinstance(given, str):
        sent.text(given)
    for item in as_list(given):
        if isinstance(item, dict):
            _item(item, sent)
    return sent


def _item(item: dict[str, Any], sent: Sent) -> None:
    kind = item.get("type", "message")
    if kind == "item_reference":
        raise unbounded("An item reference", "input")
    if kind == "message":
        content = item.get("content")
        if isinstance(content, str):
            sent.text(content)
        for part in as_list(content):
            if not isinstance(part, dict):
                continue
            if part.get("type") == "input_image":
                sent.images += 1
            elif part.get("type") == "input_file":
                raise unbounded("A file input", "input")
            else:
                sent.text(part.get("text"))
        return
    for field in ("name", "arguments", "input", "call_id"):
        sent.text(item.get(field))
    output = item.get("output")
    if isinstance(output, str):
        sent.text(output)
    elif output is not None:
        sent.json(output)
    for part in as_list(item.get("summary")) + as_list(item.get("content")):
        if isinstance(part, dict):
            sent.text(part.get("text"))
    sent.text(item.get("encrypted_content"))
    if isinstance(item.get("action"), dict):
        sent.json(item["action"])


class ResponsesClient:
    name = "responses"
    form_body = False

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = require_model(body)
        given = body.get("input")
        if not isinstance(given, str | list) or not given:
            raise InvalidRequest("'input' must be a string or a non-empty array", details={"param": "input"})
        sent = inputs(body)
        return RequestFacts(
            model=model,
            stream=stream_flag(body),
            prompt_bound_tokens=raw_len,
            prompt_text_bytes=sent.text_bytes,
            requested_max_output=positive_int(body, "max_output_tokens"),
            wants_stream_usage=True,  # response.completed is part of every Responses stream
            images=sent.images,
        )

    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        body["max_output_tokens"] = tokens

    def attach_cost(self, obj: dict[str, Any], cost: dict[str, Any]) -> None:
        """On the response: the answer itself, or the one inside the stream's final event."""
        inner = obj.get("response") if obj.get("type") in FINAL_EVENTS else obj
        if isinstance(inner, dict):
            put_cost(inner, cost)


# --- the upstream side ---------------------------------------------------------------------------


def event_bytes(event: dict[str, Any]) -> int:
    """Text a stream event delivered: every ``*.delta`` (text, refusal, reasoning, tool arguments),
    and the name of a tool call when its item is added."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return 0
    if kind.endswith(".delta"):
        return str_bytes(event.get("delta"))
    if kind == "response.output_item.added":
        item = event.get("item")
        return str_bytes(item.get("name")) if isinstance(item, dict) else 0
    return 0


def output_bytes(output: Any) -> int:
    """Text the ``output`` items of a whole answer delivered."""
    n = 0
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        n += str_bytes(item.get("name")) + str_bytes(item.get("arguments")) + str_bytes(item.get("input"))
        for part in (item.get("content") or []) + (item.get("summary") or []):
            if isinstance(part, dict):
                n += str_bytes(part.get("text")) + str_bytes(part.get("refusal"))
    return n


class ResponsesUpstream:
    path = "/responses"
    form_body = False
    units_as_reserved = False
    end_markers: tuple[bytes, ...] = (b"[DONE]",)  # an OpenAI-compatible upstream may send it

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        return False  # usage always arrives in response.completed

    def usage(self, response: dict[str, Any]) -> Usage | None:
        if response.get("type") in FINAL_EVENTS:
            inner = response.get("response")
            return to_usage(inner.get("usage")) if isinstance(inner, dict) else None
        return to_usage(response.get("usage"))

    def may_carry_usage(self, data: bytes) -> bool:
        return (
            b'"response.completed"' in data
            or b'"response.incomplete"' in data
            or b'"response.failed"' in data
        )

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        return event.get("type") in FINAL_EVENTS

    def is_end_event(self, payload: bytes) -> bool:
        return payload == b"[DONE]"

    def may_end_a_choice(self, payload: bytes) -> bool:
        return False

    def merge_usage(self, earlier: Usage | None, later: Usage) -> Usage:
        return later

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        return event_bytes(event)

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        return output_bytes(response.get("output"))


CLIENT = ResponsesClient()
UPSTREAM = ResponsesUpstream()
