"""What an endpoint family must tell the payment pipeline (one small adapter per family).

The pipeline does the money; an adapter only knows its dialect: how big a request can get, how to
cap and prepare it, where the usage is, and how to show the user what the request cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast

from routstr.core.usage import Usage


@dataclass(slots=True)
class RequestFacts:
    model: str
    stream: bool
    prompt_bound_tokens: int  # an upper bound of the prompt's tokens
    prompt_text_bytes: int  # for the documented estimate when no usage comes back
    requested_max_output: int | None  # what the client asked for, if anything
    wants_stream_usage: bool  # the client gets the final usage event (asked for it, or the dialect has it)
    has_output: bool = True  # False for endpoints that generate no tokens (embeddings)
    requests: int = 0  # > 0: priced per request only (e.g. images: one unit per image asked for)
    # generations the output limit applies to each: ``n`` choices (× ``best_of`` × prompts for legacy
    # completions); the reservation and the upstream's cap cover all of them
    outputs: int = 1
    images: int = 0  # image inputs: each is reserved at the node's per-image token bound
    # the least output limit the upstream takes for this body (Anthropic's extended thinking: above
    # a budget of at least 1024): a limit lowered to fit the balance stays at or above it
    upstream_min_output: int = 1


class EndpointAdapter(Protocol):
    upstream_path: str
    form_body: bool  # multipart/form-data (uploads) rather than JSON

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        """Validate the request (raise InvalidRequest) and say how big it can get."""
        ...

    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        """Cap the output (when the node, not the client, chose the limit)."""
        ...

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        """Ask the upstream to report usage at the end of a stream."""
        ...

    def usage(self, response: dict[str, Any]) -> Usage | None:
        """The usage in a response or in a stream event, if any."""
        ...

    def may_carry_usage(self, data: bytes) -> bool:
        """A cheap byte test: could this stream event hold usage? (Only those are parsed.)"""
        ...

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        """Bytes of text one stream event delivers, for the estimate."""
        ...

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        """Bytes of text a complete (non-streamed) response delivers, for the estimate."""
        ...

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        """The event that carries the final usage: held back and sent last, with the cost in it
        (dropped if the client did not ask for usage)."""
        ...

    def attach_cost(self, obj: dict[str, Any], cost: dict[str, Any]) -> None:
        """Put the cost object (``cost_object``) where the user sees it: ``usage.cost``."""
        ...

    def to_upstream(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request in the upstream's dialect (the same dict when no translation is needed)."""
        ...

    def from_upstream(self, obj: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
        """A complete answer in the client's dialect."""
        ...

    def stream_translator(self, model: str) -> StreamTranslator | None:
        """None when the upstream's events go to the client as they are."""
        ...

    def for_kind(self, kind: str) -> EndpointAdapter | None:
        """The adapter that talks to a provider of this kind, or None if such a provider cannot serve
        the endpoint (e.g. an Anthropic provider and chat completions)."""
        ...

    def merge_usage(self, earlier: Usage | None, later: Usage) -> Usage:
        """Usage from a later stream event, combined with what earlier ones said."""
        ...

    def is_end_event(self, payload: bytes) -> bool:
        """The stream's last event (``[DONE]``, ``message_stop``): sent after the usage and its cost."""
        ...

    def may_end_a_choice(self, payload: bytes) -> bool:
        """A cheap byte test: does this event end a choice (OpenAI's ``finish_reason``)? When the client
        did not ask for the usage-only event, the usage and cost ride on the last such event."""
        ...


class StreamTranslator(Protocol):
    def feed(self, events: bytes) -> bytes:
        """Upstream events (whole ones) in, client events out."""
        ...

    def finish(self, usage: Usage | None, cost: dict[str, Any]) -> bytes:
        """The client's closing events, carrying the usage and the cost."""
        ...


class PassThrough:
    """The hooks of an adapter whose client and upstream speak the same (OpenAI) dialect."""

    form_body = False

    def to_upstream(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def from_upstream(self, obj: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
        return obj

    def stream_translator(self, model: str) -> StreamTranslator | None:
        return None

    def for_kind(self, kind: str) -> EndpointAdapter | None:
        return cast("EndpointAdapter", self) if kind == "openai" else None

    def merge_usage(self, earlier: Usage | None, later: Usage) -> Usage:
        return later

    def is_end_event(self, payload: bytes) -> bool:
        return payload == b"[DONE]"

    def may_end_a_choice(self, payload: bytes) -> bool:
        return False
