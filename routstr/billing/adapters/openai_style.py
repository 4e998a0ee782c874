"""What OpenAI's chat and legacy completions share: usage dialect, the final usage chunk, costs."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import PassThrough
from routstr.billing.adapters.common import include_usage, put_cost
from routstr.core.usage import Usage
from routstr.core.usage_dialects import openai_chat


class OpenAIStyle(PassThrough):
    """Streams end with a ``choices: []`` chunk holding ``usage`` when the client asked for it
    (``stream_options.include_usage``); otherwise the usage rides on the last ``finish_reason`` chunk,
    as OpenRouter always reports it, without a ``choices: []`` chunk that clients indexing
    ``choices[0]`` trip over. Then ``[DONE]``."""

    upstream_path = ""

    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        """The cap goes in the field(s) the client used (reasoning models refuse ``max_tokens``): both,
        if it sent both, so that neither lets the upstream write beyond the reservation."""
        used = [f for f in ("max_completion_tokens", "max_tokens") if body.get(f) is not None]
        for name in used or ["max_tokens"]:
            body[name] = tokens

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        return include_usage(body)

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return openai_chat(response.get("usage"))

    def may_carry_usage(self, data: bytes) -> bool:
        return b'"usage":{' in data or b'"usage": {' in data

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        return not event.get("choices") and event.get("usage") is not None

    def may_end_a_choice(self, payload: bytes) -> bool:
        return b'"finish_reason":"' in payload or b'"finish_reason": "' in payload

    def attach_cost(self, obj: dict[str, Any], cost: dict[str, Any]) -> None:
        put_cost(obj, cost)

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        return sum(self._choice_text_bytes(ch) for ch in event.get("choices") or () if isinstance(ch, dict))

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        return self.event_text_bytes(response)

    def _choice_text_bytes(self, choice: dict[str, Any]) -> int:
        raise NotImplementedError
