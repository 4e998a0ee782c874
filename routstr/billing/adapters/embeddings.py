"""OpenAI embeddings: ``POST /v1/embeddings``, billed on input tokens (nothing is generated)."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import RequestFacts
from routstr.billing.adapters.common import require_model, text_bytes
from routstr.billing.adapters.unstreamed import Unstreamed
from routstr.core.errors import InvalidRequest
from routstr.core.usage import Usage
from routstr.core.usage_dialects import openai_chat


class Embeddings(Unstreamed):
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

    def usage(self, response: dict[str, Any]) -> Usage | None:
        u = openai_chat(response.get("usage"))
        return None if u is None else Usage(u.prompt_tokens, 0)
