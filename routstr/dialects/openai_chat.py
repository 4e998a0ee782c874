"""OpenAI chat completions (``POST /v1/chat/completions``) and legacy completions (``POST /v1/completions``):
one dialect, both sides. The two endpoints differ only in how a request is read and where a choice's
text is; usage, streams and costs are the same.

Usage: ``prompt_tokens`` (cache reads inside, in ``prompt_tokens_details.cached_tokens``),
``completion_tokens`` (reasoning inside). Streams end with a ``choices: []`` chunk holding ``usage`` when
asked for it (``stream_options.include_usage``: the node always asks the upstream); a client that did not
ask gets the usage on the last ``finish_reason`` chunk instead, as OpenRouter always reports it, without
a ``choices: []`` chunk that clients indexing ``choices[0]`` trip over. Then ``[DONE]``.

Legacy completions: a list of prompts is answered choice set by choice set, and ``best_of`` generates
that many per prompt (billed, though only ``n`` come back): the output limit applies to each
generation, so the reservation and the cap cover prompts × max(n, best_of) of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routstr.core.errors import InvalidRequest
from routstr.core.usage import BYTES_PER_TOKEN_ESTIMATE, Usage
from routstr.dialects.cost import put_cost
from routstr.dialects.fields import (
    Sent,
    as_list,
    check_tier,
    count_at,
    has_counts,
    positive_count,
    positive_int,
    require_model,
    str_bytes,
    stream_flag,
    unbounded,
    unpriced,
)
from routstr.dialects.sides import RequestFacts

MAX_CHOICES = 128  # OpenAI's own limit of ``n``
MAX_BEST_OF = 20  # OpenAI's own limit
CLIENT_TOOLS = frozenset({"function", "custom"})  # tools the client runs itself: ordinary tokens


def to_usage(u: Any) -> Usage | None:
    """The canonical ``Usage`` of an OpenAI ``usage`` object (None: the answer reported none)."""
    if not has_counts(u, "prompt_tokens"):
        return None
    return Usage(
        prompt_tokens=count_at(u, "prompt_tokens"),
        completion_tokens=count_at(u, "completion_tokens"),
        cached_tokens=count_at(u, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=count_at(u, "completion_tokens_details", "reasoning_tokens"),
    )


# --- the client side -----------------------------------------------------------------------------


def wants_usage(body: dict[str, Any]) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, dict) and bool(opts.get("include_usage"))


def inspect_chat(body: dict[str, Any], raw_len: int) -> RequestFacts:
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
        requested_max_output=positive_int(body, "max_completion_tokens") or positive_int(body, "max_tokens"),
        wants_stream_usage=wants_usage(body),
        outputs=positive_count(body, "n", MAX_CHOICES),
        images=sent.images,
    )


def inspect_completions(body: dict[str, Any], raw_len: int) -> RequestFacts:
    model = require_model(body)
    prompts, size = _prompts(body.get("prompt"))
    check_tier(body)
    n = positive_count(body, "n", MAX_CHOICES)
    best_of = positive_count(body, "best_of", MAX_BEST_OF)
    if body.get("best_of") is not None and best_of < n:
        raise InvalidRequest("'best_of' must be at least 'n'", details={"param": "best_of"})
    return RequestFacts(
        model=model,
        stream=stream_flag(body),
        prompt_bound_tokens=raw_len,
        prompt_text_bytes=size,
        requested_max_output=positive_int(body, "max_tokens"),
        wants_stream_usage=wants_usage(body),
        outputs=prompts * max(n, best_of),
    )


def _prompts(prompt: Any) -> tuple[int, int]:
    """(how many prompts, bytes of their text; a token id counts as one token's worth)."""
    if isinstance(prompt, str):
        return 1, len(prompt.encode())
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            return 1, len(prompt) * BYTES_PER_TOKEN_ESTIMATE  # one prompt as token ids
        size = 0
        for p in prompt:
            if isinstance(p, str):
                size += len(p.encode())
            elif isinstance(p, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
                size += len(p) * BYTES_PER_TOKEN_ESTIMATE
            else:
                break
        else:
            return len(prompt), size
    raise InvalidRequest(
        "'prompt' must be a string, an array of strings or of token arrays", details={"param": "prompt"}
    )


def chat_inputs(body: dict[str, Any]) -> Sent:
    """What a chat request sends; refuses web search, audio output and built-in tools (unpriced) and
    files (unbounded)."""
    check_tier(body)
    if body.get("web_search_options") is not None:
        raise unpriced("Web search", "web_search_options")
    modalities = body.get("modalities")
    if body.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        raise unpriced("Audio output", "modalities")
    sent = Sent()
    for tool in as_list(body.get("tools")):
        if isinstance(tool, dict) and tool.get("type", "function") not in CLIENT_TOOLS:
            raise unpriced(f"The built-in tool {tool.get('type')!r}", "tools")
    for name in ("tools", "functions", "response_format", "tool_choice", "prediction"):
        if isinstance(body.get(name), dict | list):
            sent.json(body[name])
    for m in as_list(body.get("messages")):
        if not isinstance(m, dict):
            continue
        sent.text(m.get("name"))
        _chat_content(m.get("content"), sent)
        for call in as_list(m.get("tool_calls")):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                sent.text(fn.get("name"))
                sent.json(fn.get("arguments"))
        if isinstance(m.get("function_call"), dict):
            sent.json(m["function_call"])
    return sent


def _chat_content(content: Any, sent: Sent) -> None:
    if isinstance(content, str):
        sent.text(content)
        return
    for part in as_list(content):
        if isinstance(part, str):
            sent.text(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "image_url":
            sent.images += 1
        elif kind == "file":
            raise unbounded("A file input", "messages")
        else:
            sent.text(part.get("text"))
            sent.text(part.get("refusal"))


class OpenAIClient:
    """The client side of both endpoints: they differ only in how a request is read."""

    __slots__ = ("_inspect", "name")
    form_body = False

    def __init__(self, name: str, inspect: Callable[[dict[str, Any], int], RequestFacts]) -> None:
        self.name = name
        self._inspect = inspect

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        return self._inspect(body, raw_len)

    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        """The cap goes in the field(s) the client used (reasoning models refuse ``max_tokens``): both,
        if it sent both, so that neither lets the upstream write beyond the reservation."""
        used = [f for f in ("max_completion_tokens", "max_tokens") if body.get(f) is not None]
        for name in used or ["max_tokens"]:
            body[name] = tokens

    def attach_cost(self, obj: dict[str, Any], cost: dict[str, Any]) -> None:
        put_cost(obj, cost)


CHAT_CLIENT = OpenAIClient("chat_completions", inspect_chat)
COMPLETIONS_CLIENT = OpenAIClient("completions", inspect_completions)


# --- the upstream side ---------------------------------------------------------------------------


def include_usage(body: dict[str, Any]) -> bool:
    """Ask an OpenAI-style stream for its final usage chunk; True if the body changed."""
    opts = body.get("stream_options")
    if isinstance(opts, dict) and opts.get("include_usage") is True:
        return False
    body["stream_options"] = {**(opts if isinstance(opts, dict) else {}), "include_usage": True}
    return True


def chat_part_bytes(part: Any) -> int:
    """Text a chat choice's ``delta`` (stream) or ``message`` (whole answer) delivered: content,
    reasoning, refusals, tool-call names and arguments (hidden reasoning never reaches the node)."""
    if not isinstance(part, dict):
        return 0
    content = part.get("content")
    n = str_bytes(content)
    if isinstance(content, list):
        n += sum(str_bytes(p.get("text")) for p in content if isinstance(p, dict))
    n += str_bytes(part.get("reasoning_content")) + str_bytes(part.get("reasoning"))
    n += str_bytes(part.get("refusal"))
    for call in part.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            n += str_bytes(fn.get("name")) + str_bytes(fn.get("arguments"))
        elif isinstance(call, dict) and isinstance(call.get("custom"), dict):
            n += str_bytes(call["custom"].get("name")) + str_bytes(call["custom"].get("input"))
    fc = part.get("function_call")
    if isinstance(fc, dict):
        n += str_bytes(fc.get("name")) + str_bytes(fc.get("arguments"))
    return n


def chat_choice_bytes(choice: dict[str, Any]) -> int:
    return chat_part_bytes(choice.get("delta") or choice.get("message"))


def completion_choice_bytes(choice: dict[str, Any]) -> int:
    return str_bytes(choice.get("text"))


class OpenAIUpstream:
    """The upstream side of both endpoints: they differ only in where a choice's text is."""

    __slots__ = ("_choice_bytes", "path")
    form_body = False
    units_as_reserved = False
    end_markers: tuple[bytes, ...] = (b"[DONE]",)

    def __init__(self, path: str, choice_bytes: Callable[[dict[str, Any]], int]) -> None:
        self.path = path
        self._choice_bytes = choice_bytes

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        return include_usage(body)

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return to_usage(response.get("usage"))

    def may_carry_usage(self, data: bytes) -> bool:
        return b'"usage":{' in data or b'"usage": {' in data

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        return not event.get("choices") and event.get("usage") is not None

    def is_end_event(self, payload: bytes) -> bool:
        return payload == b"[DONE]"

    def may_end_a_choice(self, payload: bytes) -> bool:
        return b'"finish_reason":"' in payload or b'"finish_reason": "' in payload

    def merge_usage(self, earlier: Usage | None, later: Usage) -> Usage:
        return later  # the final chunk's usage is the whole

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        return sum(self._choice_bytes(ch) for ch in event.get("choices") or () if isinstance(ch, dict))

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        return self.event_text_bytes(response)


CHAT_UPSTREAM = OpenAIUpstream("/chat/completions", chat_choice_bytes)
COMPLETIONS_UPSTREAM = OpenAIUpstream("/completions", completion_choice_bytes)
