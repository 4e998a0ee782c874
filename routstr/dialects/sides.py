"""The two sides of an API dialect, as the payment pipeline needs them.

A request meets two dialects: the one its client speaks (what it asked for, how to cap it, where the
cost goes in the answer) and the one the provider speaks (where to send it, where the usage is, how its
stream ends). They are the same API family unless a translation sits between them
(``routstr.billing.adapter`` chooses both and the translation, by endpoint and provider kind).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from routstr.core.usage import Usage


@dataclass(slots=True)
class RequestFacts:
    """What the client side reads from a request before anything is reserved."""

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


class ClientSide(Protocol):
    """The dialect the client speaks, on one endpoint."""

    # the endpoint family (``chat_completions``, ``anthropic_messages``…): a fixed metrics label, and
    # the client's half of the key that chooses the upstream side (``routstr.billing.adapter``)
    name: str
    form_body: bool  # the request is multipart/form-data (uploads) rather than JSON

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        """Validate the request (raise InvalidRequest) and say how big it can get."""
        ...

    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        """Cap the output (when the node, not the client, chose the limit)."""
        ...

    def attach_cost(self, obj: dict[str, Any], cost: dict[str, Any]) -> None:
        """Put the cost object (``dialects.cost.cost_object``) where the user sees it: ``usage.cost``
        of an answer, or of the stream event that carries the usage."""
        ...


class UpstreamSide(Protocol):
    """The dialect a provider speaks, on one endpoint: its answers and its stream's events."""

    path: str  # the upstream's path below its base URL
    form_body: bool  # sent as multipart/form-data
    # the answer does not say the units (e.g. audio minutes): the units reserved are charged
    units_as_reserved: bool
    # bytes found in every event that ends the stream (``[DONE]``, ``message_stop``): a chunk without
    # any of them (nor usage, see ``may_carry_usage``) goes to the client without being parsed
    end_markers: tuple[bytes, ...]

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        """Ask the upstream to report usage at the end of a stream; True if the body changed."""
        ...

    def usage(self, response: dict[str, Any]) -> Usage | None:
        """The usage in a response or in a stream event, if any (canonical ``Usage``)."""
        ...

    def may_carry_usage(self, data: bytes) -> bool:
        """A cheap byte test: could this stream event hold usage? (Only those are parsed.)"""
        ...

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        """The event that carries the final usage: held back and sent last, with the cost in it
        (dropped if the client did not ask for usage)."""
        ...

    def is_end_event(self, payload: bytes) -> bool:
        """The stream's last event: sent after the usage and its cost."""
        ...

    def may_end_a_choice(self, payload: bytes) -> bool:
        """A cheap byte test: does this event end a choice (OpenAI's ``finish_reason``)? When the client
        did not ask for the usage-only event, the usage and cost ride on the last such event."""
        ...

    def merge_usage(self, earlier: Usage | None, later: Usage) -> Usage:
        """Usage from a later stream event, combined with what earlier ones said."""
        ...

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        """Bytes of text one stream event delivers, for the estimate."""
        ...

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        """Bytes of text a complete (non-streamed) response delivers, for the estimate."""
        ...


class StreamTranslator(Protocol):
    """One stream's events, from the upstream's dialect into the client's."""

    def feed(self, events: bytes) -> bytes:
        """Upstream events (whole ones) in, client events out."""
        ...

    def finish(self, usage: Usage | None, cost: dict[str, Any]) -> bytes:
        """The client's closing events, carrying the usage and the cost."""
        ...


class Translation(Protocol):
    """A client dialect served by a provider of another: the request, the answer and the stream."""

    def to_upstream(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request in the upstream's dialect."""
        ...

    def from_upstream(self, obj: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
        """A complete answer in the client's dialect."""
        ...

    def stream(self, model: str) -> StreamTranslator:
        """A translator for one stream."""
        ...
