"""Anthropic Messages (``POST /v1/messages``), for clients such as Claude Code: both sides.

Usage: ``input_tokens`` *excludes* cache reads and writes, which come apart as
``cache_read_input_tokens`` and ``cache_creation_input_tokens``. In a stream it comes in two parts
(input in ``message_start``, output in ``message_delta``); ``message_delta`` is held back and sent
with the cost, then ``message_stop``. On an OpenAI-type provider the client side is served through
chat completions (``dialects/anthropic_chat.py``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from routstr.core.errors import InvalidRequest
from routstr.core.usage import Usage
from routstr.dialects.cost import put_cost
from routstr.dialects.fields import (
    Sent,
    as_list,
    count_at,
    has_counts,
    json_bytes,
    positive_int,
    require_model,
    str_bytes,
    stream_flag,
    unbounded,
    unpriced,
)
from routstr.dialects.sides import RequestFacts

MIN_THINKING_BUDGET = 1024  # Anthropic's smallest ``thinking.budget_tokens``
# Anthropic's server tools (billed per use by the provider) start with these
SERVER_TOOLS = ("web_search", "web_fetch", "code_execution")


def to_usage(u: Any) -> Usage | None:
    """The canonical ``Usage`` of an Anthropic ``usage`` object (None: the answer reported none)."""
    if not has_counts(u, "input_tokens"):
        return None
    read = count_at(u, "cache_read_input_tokens")
    written = count_at(u, "cache_creation_input_tokens")
    return Usage(
        prompt_tokens=count_at(u, "input_tokens") + read + written,
        completion_tokens=count_at(u, "output_tokens"),
        cached_tokens=read,
        cache_write_tokens=written,
    )


def from_usage(u: Usage | None) -> dict[str, int]:
    """A canonical ``Usage`` as Anthropic reports it (for answers translated from another dialect)."""
    if u is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {
        "input_tokens": max(u.prompt_tokens - u.cached_tokens - u.cache_write_tokens, 0),
        "output_tokens": u.completion_tokens,
        "cache_read_input_tokens": u.cached_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
    }


# --- the client side -----------------------------------------------------------------------------


def thinking_budget(body: dict[str, Any]) -> int | None:
    """The budget of ``thinking: {"type": "enabled", "budget_tokens": N}`` (None: no such budget)."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    return budget if isinstance(budget, int) and not isinstance(budget, bool) else None


def inputs(body: dict[str, Any]) -> Sent:
    """What a Messages request sends; refuses MCP servers, containers and server tools (unpriced) and
    documents by reference (unbounded)."""
    if body.get("mcp_servers"):
        raise unpriced("An MCP server connector", "mcp_servers")
    if body.get("container") is not None:
        raise unpriced("A code execution container", "container")
    sent = Sent()
    for tool in as_list(body.get("tools")):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind.startswith(SERVER_TOOLS):
            raise unpriced(f"The server tool {kind!r}", "tools")
    sent.json(body.get("tools"))
    if isinstance(body.get("tool_choice"), dict):
        sent.json(body["tool_choice"])
    _content(body.get("system"), sent)
    for m in as_list(body.get("messages")):
        if isinstance(m, dict):
            _content(m.get("content"), sent)
    return sent


def _content(content: Any, sent: Sent) -> None:
    if isinstance(content, str):
        sent.text(content)
        return
    for block in as_list(content):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "image":
            sent.images += 1
        elif kind == "document":
            source = block.get("source")
            if not isinstance(source, dict) or source.get("type") not in ("text", "content"):
                raise unbounded("A document (PDF, file or URL)", "messages")
            sent.text(source.get("data"))
            _content(source.get("content"), sent)
        elif kind == "container_upload":
            raise unbounded("A container upload", "messages")
        elif kind == "tool_use":
            sent.text(block.get("name"))
            sent.json(block.get("input"))
        elif kind == "tool_result":
            _content(block.get("content"), sent)
        else:
            for field in ("text", "thinking", "data"):
                sent.text(block.get(field))
            _content(block.get("content"), sent)


class AnthropicClient:
    name = "anthropic_messages"
    form_body = False

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = require_model(body)
        max_tokens = positive_int(body, "max_tokens")
        if max_tokens is None:
            raise InvalidRequest("'max_tokens' is required", details={"param": "max_tokens"})
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' must be a non-empty array", details={"param": "messages"})
        sent = inputs(body)
        return RequestFacts(
            model=model,
            stream=stream_flag(body),
            prompt_bound_tokens=raw_len,
            prompt_text_bytes=sent.text_bytes,
            requested_max_output=max_tokens,
            wants_stream_usage=True,  # message_delta always carries the usage
            images=sent.images,
            upstream_min_output=MIN_THINKING_BUDGET + 1 if thinking_budget(body) is not None else 1,
        )

    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        """Anthropic wants ``max_tokens`` above an extended-thinking budget: a lowered limit lowers the
        budget with it (never under Anthropic's minimum: the pipeline keeps the limit above it)."""
        body["max_tokens"] = tokens
        budget = thinking_budget(body)
        if budget is not None and budget >= tokens:
            body["thinking"] = {**body["thinking"], "budget_tokens": max(tokens - 1, MIN_THINKING_BUDGET)}

    def attach_cost(self, obj: dict[str, Any], cost: dict[str, Any]) -> None:
        put_cost(obj, cost)


# --- the upstream side ---------------------------------------------------------------------------


def event_bytes(event: dict[str, Any]) -> int:
    """Text a stream event delivered: text, thinking and tool input deltas, and a tool call's name."""
    kind = event.get("type")
    if kind == "content_block_delta":
        delta = event.get("delta")
        if isinstance(delta, dict):
            text = str_bytes(delta.get("text")) + str_bytes(delta.get("thinking"))
            return text + str_bytes(delta.get("partial_json"))
        return 0
    if kind == "content_block_start":
        return content_bytes([event.get("content_block")])
    return 0


def content_bytes(content: Any) -> int:
    """Text the ``content`` blocks of a whole answer delivered."""
    n = 0
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict):
            n += str_bytes(block.get("text")) + str_bytes(block.get("thinking"))
            n += str_bytes(block.get("name")) + json_bytes(block.get("input"))
    return n


class AnthropicUpstream:
    path = "/messages"
    form_body = False
    units_as_reserved = False
    end_markers: tuple[bytes, ...] = (b"message_stop",)

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        return False  # Anthropic streams always carry usage

    def usage(self, response: dict[str, Any]) -> Usage | None:
        kind = response.get("type")
        if kind == "message_start":
            message = response.get("message")
            return to_usage(message.get("usage")) if isinstance(message, dict) else None
        if kind == "message_delta":
            u = response.get("usage")
            out = u.get("output_tokens") if isinstance(u, dict) else None
            return Usage(0, out) if isinstance(out, int) else None
        return to_usage(response.get("usage"))

    def may_carry_usage(self, data: bytes) -> bool:
        return b'"message_start"' in data or b'"message_delta"' in data

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        return event.get("type") == "message_delta"

    def is_end_event(self, payload: bytes) -> bool:
        return payload.startswith(b'{"type":"message_stop"') or payload == b'{"type": "message_stop"}'

    def may_end_a_choice(self, payload: bytes) -> bool:
        return False  # the usage always has its event (message_delta)

    def merge_usage(self, earlier: Usage | None, later: Usage) -> Usage:
        """``message_start`` has the input, ``message_delta`` the output."""
        if earlier is None:
            return later
        return replace(earlier, completion_tokens=later.completion_tokens or earlier.completion_tokens)

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        return event_bytes(event)

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        return content_bytes(response.get("content"))


CLIENT = AnthropicClient()
UPSTREAM = AnthropicUpstream()
