"""OpenAI Responses API: ``POST /v1/responses``.

Usage comes in the response object, or in the stream's final event (``response.completed``, or
``response.incomplete`` when the output limit cut it, or ``response.failed``), which also carries
the whole answer: that event is held back, settled, and sent last with the cost in it.
"""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import PassThrough, RequestFacts
from routstr.billing.adapters.common import positive_int, put_cost, require_model, stream_flag
from routstr.billing.adapters.inputs import responses_inputs
from routstr.billing.adapters.outputs import responses_event_bytes, responses_output_bytes
from routstr.core.errors import InvalidRequest
from routstr.core.usage import Usage
from routstr.core.usage_dialects import openai_responses

FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


class Responses(PassThrough):
    upstream_path = "/responses"

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = require_model(body)
        given = body.get("input")
        if not isinstance(given, str | list) or not given:
            raise InvalidRequest("'input' must be a string or a non-empty array", details={"param": "input"})
        sent = responses_inputs(body)
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

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        return False  # usage always arrives in response.completed

    def usage(self, response: dict[str, Any]) -> Usage | None:
        if response.get("type") in FINAL_EVENTS:
            inner = response.get("response")
            return openai_responses(inner.get("usage")) if isinstance(inner, dict) else None
        return openai_responses(response.get("usage"))

    def may_carry_usage(self, data: bytes) -> bool:
        return (
            b'"response.completed"' in data
            or b'"response.incomplete"' in data
            or b'"response.failed"' in data
        )

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        return event.get("type") in FINAL_EVENTS

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        return responses_event_bytes(event)

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        return responses_output_bytes(response.get("output"))

    def attach_cost(self, obj: dict[str, Any], cost: dict[str, Any]) -> None:
        inner = obj.get("response") if obj.get("type") in FINAL_EVENTS else obj
        if isinstance(inner, dict):
            put_cost(inner, cost)
