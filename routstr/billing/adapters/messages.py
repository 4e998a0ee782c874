"""Anthropic Messages (``POST /v1/messages``) for Anthropic clients such as Claude Code, served by an
OpenAI-type upstream: the request, the answer and its stream are translated (routstr/dialects)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from routstr.billing.adapter import EndpointAdapter, RequestFacts, StreamTranslator
from routstr.billing.adapters.chat import ChatCompletions
from routstr.billing.adapters.common import positive_int, put_cost, require_model, stream_flag
from routstr.billing.adapters.inputs import anthropic_inputs
from routstr.billing.adapters.outputs import anthropic_content_bytes, anthropic_event_bytes
from routstr.core.errors import InvalidRequest
from routstr.core.usage import Usage
from routstr.core.usage_dialects import anthropic
from routstr.dialects.anthropic_chat import StreamToAnthropic, message_from_chat, request_to_chat

MIN_THINKING_BUDGET = 1024  # Anthropic's smallest ``thinking.budget_tokens``


def _thinking_budget(body: dict[str, Any]) -> int | None:
    """The budget of ``thinking: {"type": "enabled", "budget_tokens": N}`` (None: no such budget)."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    return budget if isinstance(budget, int) and not isinstance(budget, bool) else None


class AnthropicMessages(ChatCompletions):
    """The upstream side is chat completions (usage, events, estimate); the client side is Anthropic's."""

    upstream_path = "/chat/completions"

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = require_model(body)
        max_tokens = positive_int(body, "max_tokens")
        if max_tokens is None:
            raise InvalidRequest("'max_tokens' is required", details={"param": "max_tokens"})
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' must be a non-empty array", details={"param": "messages"})
        sent = anthropic_inputs(body)
        return RequestFacts(
            model=model,
            stream=stream_flag(body),
            prompt_bound_tokens=raw_len,
            prompt_text_bytes=sent.text_bytes,
            requested_max_output=max_tokens,
            wants_stream_usage=True,  # message_delta always carries the usage
            images=sent.images,
            upstream_min_output=MIN_THINKING_BUDGET + 1 if _thinking_budget(body) is not None else 1,
        )

    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        """Anthropic wants ``max_tokens`` above an extended-thinking budget: a lowered limit lowers the
        budget with it (never under Anthropic's minimum: the pipeline keeps the limit above it)."""
        body["max_tokens"] = tokens
        budget = _thinking_budget(body)
        if budget is not None and budget >= tokens:
            body["thinking"] = {**body["thinking"], "budget_tokens": max(tokens - 1, MIN_THINKING_BUDGET)}

    def to_upstream(self, body: dict[str, Any]) -> dict[str, Any]:
        return request_to_chat(body)

    def from_upstream(self, obj: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
        return message_from_chat(obj, str(obj.get("model", "")), usage)

    def stream_translator(self, model: str) -> StreamTranslator | None:
        return StreamToAnthropic(model)

    def attach_cost(self, obj: dict[str, Any], cost: dict[str, Any]) -> None:
        put_cost(obj, cost)

    def for_kind(self, kind: str) -> EndpointAdapter | None:
        """Translated for OpenAI-type providers, forwarded as it is to Anthropic ones."""
        return self if kind == "openai" else NATIVE if kind == "anthropic" else None


class AnthropicNative(AnthropicMessages):
    """The same endpoint on an Anthropic-type provider: forwarded as it is, metered in its own dialect.

    Usage comes in two parts in a stream (input in ``message_start``, output in ``message_delta``);
    ``message_delta`` is held back and sent with the cost, then ``message_stop``.
    """

    upstream_path = "/messages"

    def to_upstream(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        return False  # Anthropic streams always carry usage

    def usage(self, response: dict[str, Any]) -> Usage | None:
        kind = response.get("type")
        if kind == "message_start":
            message = response.get("message")
            return anthropic(message.get("usage")) if isinstance(message, dict) else None
        if kind == "message_delta":
            u = response.get("usage")
            out = u.get("output_tokens") if isinstance(u, dict) else None
            return Usage(0, out) if isinstance(out, int) else None
        return anthropic(response.get("usage"))

    def merge_usage(self, earlier: Usage | None, later: Usage) -> Usage:
        if earlier is None:
            return later
        return replace(earlier, completion_tokens=later.completion_tokens or earlier.completion_tokens)

    def may_carry_usage(self, data: bytes) -> bool:
        return b'"message_start"' in data or b'"message_delta"' in data

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        return event.get("type") == "message_delta"

    def is_end_event(self, payload: bytes) -> bool:
        return payload.startswith(b'{"type":"message_stop"') or payload == b'{"type": "message_stop"}'

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        return anthropic_event_bytes(event)

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        return anthropic_content_bytes(response.get("content"))

    def from_upstream(self, obj: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
        return obj

    def stream_translator(self, model: str) -> StreamTranslator | None:
        return None

    def for_kind(self, kind: str) -> EndpointAdapter | None:
        return self if kind == "anthropic" else None


NATIVE = AnthropicNative()
