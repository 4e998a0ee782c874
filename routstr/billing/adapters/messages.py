"""Anthropic Messages (``POST /v1/messages``) for Anthropic clients such as Claude Code, served by an
OpenAI-type upstream: the request, the answer and its stream are translated (routstr/dialects)."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import RequestFacts, StreamTranslator
from routstr.billing.adapters.chat import ChatCompletions
from routstr.billing.adapters.common import positive_int, put_cost, require_model, stream_flag, text_bytes
from routstr.core.errors import InvalidRequest
from routstr.core.usage import Usage
from routstr.dialects.anthropic_chat import StreamToAnthropic, message_from_chat, request_to_chat


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
        text = text_bytes(body.get("system")) + sum(
            text_bytes(m.get("content")) for m in messages if isinstance(m, dict)
        )
        return RequestFacts(
            model=model,
            stream=stream_flag(body),
            prompt_bound_tokens=raw_len,
            prompt_text_bytes=text,
            requested_max_output=max_tokens,
            wants_stream_usage=True,  # message_delta always carries the usage
        )

    def to_upstream(self, body: dict[str, Any]) -> dict[str, Any]:
        return request_to_chat(body)

    def from_upstream(self, obj: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
        return message_from_chat(obj, str(obj.get("model", "")), usage)

    def stream_translator(self, model: str) -> StreamTranslator | None:
        return StreamToAnthropic(model)

    def attach_cost(self, obj: dict[str, Any], cost_msat: int) -> None:
        put_cost(obj, cost_msat)
