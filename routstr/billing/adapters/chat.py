"""OpenAI chat completions: ``POST /v1/chat/completions``."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import RequestFacts
from routstr.billing.adapters.common import positive_int, require_model, stream_flag, wants_usage
from routstr.billing.adapters.inputs import chat_inputs, positive_count
from routstr.billing.adapters.openai_style import OpenAIStyle
from routstr.billing.adapters.outputs import chat_part_bytes
from routstr.core.errors import InvalidRequest

MAX_CHOICES = 128  # OpenAI's own limit of ``n``


class ChatCompletions(OpenAIStyle):
    upstream_path = "/chat/completions"

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = require_model(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' must be a non-empty array", details={"param": "messages"})
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise InvalidRequest("each message needs a 'role'", details={"param": "messages"})
        sent = chat_inputs(body)
        return RequestFacts(
            model=model,
            stream=stream_flag(body),
            # every token is at least one byte of the request: its length bounds the prompt
            prompt_bound_tokens=raw_len,
            prompt_text_bytes=sent.text_bytes,
            requested_max_output=positive_int(body, "max_completion_tokens")
            or positive_int(body, "max_tokens"),
            wants_stream_usage=wants_usage(body),
            outputs=positive_count(body, "n", MAX_CHOICES),
            images=sent.images,
        )

    def _choice_text_bytes(self, choice: dict[str, Any]) -> int:
        return chat_part_bytes(choice.get("delta") or choice.get("message"))
