"""What adapters of endpoints that neither stream nor generate text (embeddings, images, audio) share."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import PassThrough, RequestFacts
from routstr.billing.adapters.common import put_cost


class Unstreamed(PassThrough):
    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        return None

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        return False

    def may_carry_usage(self, data: bytes) -> bool:
        return False

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        return 0

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        return 0

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        return False

    def attach_cost(self, obj: dict[str, Any], cost: dict[str, Any]) -> None:
        put_cost(obj, cost)


def per_request(model: str, units: int) -> RequestFacts:
    """A request priced only per unit (images, transcriptions): no tokens in, none out."""
    return RequestFacts(
        model=model,
        stream=False,
        prompt_bound_tokens=0,
        prompt_text_bytes=0,
        requested_max_output=None,
        wants_stream_usage=False,
        has_output=False,
        requests=units,
    )
