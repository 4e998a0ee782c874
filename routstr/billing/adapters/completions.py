"""OpenAI legacy completions: ``POST /v1/completions`` (a ``prompt``, answers in ``choices[].text``)."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import RequestFacts
from routstr.billing.adapters.common import positive_int, require_model, stream_flag, text_bytes, wants_usage
from routstr.billing.adapters.openai_style import OpenAIStyle
from routstr.core.errors import InvalidRequest


class Completions(OpenAIStyle):
    upstream_path = "/completions"

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = require_model(body)
        prompt = body.get("prompt")
        if not isinstance(prompt, str | list) or (isinstance(prompt, list) and not prompt):
            raise InvalidRequest(
                "'prompt' must be a string or a non-empty array", details={"param": "prompt"}
            )
        return RequestFacts(
            model=model,
            stream=stream_flag(body),
            prompt_bound_tokens=raw_len,
            prompt_text_bytes=text_bytes(prompt),
            requested_max_output=positive_int(body, "max_tokens"),
            wants_stream_usage=wants_usage(body),
        )

    def _choice_text_bytes(self, choice: dict[str, Any]) -> int:
        text = choice.get("text")
        return len(text.encode()) if isinstance(text, str) else 0
