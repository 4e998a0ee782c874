"""OpenAI embeddings: ``POST /v1/embeddings``, billed on input tokens (nothing is generated)."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import PassThrough, RequestFacts
from routstr.billing.adapters.common import put_cost, require_model, text_bytes
from routstr.core.errors import InvalidRequest
from routstr.core.usage import Usage
from routstr.core.usage_dialects import openai_chat


class Embeddings(PassThrough):
    upstream_path = "/embeddings"

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = require_model(body)
        given = body.get("input")
        if not isinstance(given, str | list) or not given:
            raise InvalidRequest("'input' must be a string or a non-empty array", details={"param": "input"})
        if body.get("stream"):
            raise InvalidRequest("embeddings cannot be streamed", details={"param": "stream"})
        return RequestFacts(
            model=model,
            stream=False,
            prompt_bound_tokens=raw_len,
            prompt_text_bytes=text_bytes(given),
            requested_max_output=None,
            wants_stream_usage=False,
            has_output=False,
        )

    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        return None

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        return False

    def usage(self, response: dict[str, Any]) -> Usage | None:
        u = openai_chat(response.get("usage"))
        return None if u is None else Usage(u.prompt_tokens, 0)

    def may_carry_usage(self, data: bytes) -> bool:
        return False

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        return 0

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        return 0

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        return False

    def attach_cost(self, obj: dict[str, Any], cost_msat: int) -> None:
        put_cost(obj, cost_msat)
