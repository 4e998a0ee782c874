"""The deterministic "model" behind the fake upstream: validation, token counting, replies, usage.

Pure functions, no I/O, so a test can compute the exact usage (and so the exact charge) the node must
see for a request before sending it: ``expected_usage(body)``.

Token rule (the one rule, documented here and nowhere else):
    count_tokens(text) = ceil(len(text.encode("utf-8")) / 4)   -> 0 for "", >= 1 for any other text
    prompt_tokens      = REPLY_PRIMING_TOKENS (3)
                         + per message: PER_MESSAGE_TOKENS (3) + count_tokens(text of its content)
                                        + (1 + count_tokens(name) if it has a name)
                                        + count_tokens(name) + count_tokens(arguments) per tool call
                                        + IMAGE_PART_TOKENS (85) per non-text content part
    completion_tokens  = count_tokens(reply)
The reply is ``"Echo: " + <last user message, whitespace collapsed, first 200 chars>``, cut to at most
``max_completion_tokens`` (or ``max_tokens``) tokens, i.e. that many * 4 UTF-8 bytes.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

PER_MESSAGE_TOKENS = 3
REPLY_PRIMING_TOKENS = 3
IMAGE_PART_TOKENS = 85
ECHO_PREFIX = "Echo: "
EMPTY_REPLY = "Hello from the fake upstream."
MAX_ECHO_CHARS = 200
WORDS_PER_CHUNK = 3


@dataclass(frozen=True, slots=True)
class FakeModel:
    """One model served by the fake upstream (an entry of ``GET /v1/models``)."""

    id: str
    context_length: int = 128_000
    owned_by: str = "fake-upstream"
    created: int = 1_700_000_000

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "model",
            "created": self.created,
            "owned_by": self.owned_by,
            "context_length": self.context_length,
        }


DEFAULT_MODELS: tuple[FakeModel, ...] = (
    FakeModel("gpt-4o-mini", 128_000, "openai"),
    FakeModel("gpt-4o", 128_000, "openai"),
    FakeModel("llama-3.1-8b", 131_072, "meta"),
    FakeModel("gpt-3.5-turbo-instruct", 4_096, "openai"),  # /v1/completions (any model works there)
    FakeModel("text-embedding-3-small", 8_191, "openai"),  # /v1/embeddings
    FakeModel("claude-haiku-4-5", 200_000, "anthropic"),  # /v1/messages (any model works there)
    FakeModel("claude-sonnet-4-6", 200_000, "anthropic"),
    FakeModel("dall-e-3", 4_000, "openai"),  # /v1/images/generations
    FakeModel("whisper-1", 0, "openai"),  # /v1/audio/transcriptions
)

# Behaviours chosen by model name (the node forwards the body unchanged) or by a "fake_behavior" field.
FAIL_500 = "fail-500"
FAIL_429 = "fail-429"
FAIL_400 = "fail-400"
FAIL_TIMEOUT = "fail-timeout"
FAIL_CONNECTION_DROP = "fail-connection-drop"
SLOW_STREAM = "slow-stream"
CUT_STREAM = "cut-stream"
NO_USAGE = "no-usage"
FAILURE_MODELS: tuple[str, ...] = (
    FAIL_500,
    FAIL_429,
    FAIL_400,
    FAIL_TIMEOUT,
    FAIL_CONNECTION_DROP,
    SLOW_STREAM,
    CUT_STREAM,
    NO_USAGE,
)
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@dataclass(frozen=True, slots=True)
class ApiError:
    """An OpenAI error answer: HTTP status plus the fields of ``{"error": {...}}``."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


CANNED_ERRORS: dict[str, ApiError] = {
    FAIL_500: ApiError(
        500, "The server had an error while processing your request. Sorry about that!", "server_error"
    ),
    FAIL_429: ApiError(
        429,
        "Rate limit reached for requests (fake upstream). Please try again in 1s.",
        "requests",
        code="rate_limit_exceeded",
        headers={"Retry-After": "1"},
    ),
    FAIL_400: ApiError(
        400,
        "This model's maximum context length is 128000 tokens (fake upstream).",
        param="messages",
        code="context_length_exceeded",
    ),
}


def model_not_found(model: str) -> ApiError:
    msg = f"The model `{model}` does not exist or you do not have access to it."
    return ApiError(404, msg, code="model_not_found")


def validate_chat(body: Any, known_models: Container[str]) -> ApiError | None:
    """OpenAI's checks, in OpenAI's words, for the fields the fake reads. Failure models are known."""
    if not isinstance(body, dict):
        return ApiError(400, "Invalid body: expected a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return ApiError(400, "you must provide a model parameter")
    messages = body.get("messages")
    if messages is None:
        msg = "Missing required parameter: 'messages'."
        return ApiError(400, msg, param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        code = "empty_array" if isinstance(messages, list) else "invalid_type"
        msg = "Invalid 'messages': expected an array with minimum length 1."
        return ApiError(400, msg, param="messages", code=code)
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            msg = f"Invalid value for 'messages[{i}].role'."
            return ApiError(400, msg, param=f"messages[{i}].role", code="invalid_value")
    limit = max_output_tokens(body)
    if limit is not None and limit < 1:
        msg = f"Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got {limit}."
        return ApiError(400, msg, param="max_tokens", code="integer_below_min_value")
    if model not in known_models and model not in FAILURE_MODELS:
        return model_not_found(model)
    return None


def count_tokens(text: str) -> int:
    """ceil(UTF-8 bytes / 4): cheap, deterministic, close enough to BPE for English (~4 chars/token)."""
    return (len(text.encode("utf-8")) + 3) // 4


def content_text(content: Any) -> tuple[str, int]:
    """(text, non-text part count) of a message ``content``: a string or a list of content parts."""
    if isinstance(content, str):
        return content, 0
    if not isinstance(content, list):
        return "", 0
    texts: list[str] = []
    others = 0
    for part in content:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, str):
            texts.append(part)
        else:
            others += 1
    return "".join(texts), others


def message_tokens(message: dict[str, Any]) -> int:
    text, others = content_text(message.get("content"))
    n = PER_MESSAGE_TOKENS + count_tokens(text) + IMAGE_PART_TOKENS * others
    name = message.get("name")
    if isinstance(name, str) and name:
        n += 1 + count_tokens(name)
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            n += count_tokens(str(fn.get("name", ""))) + count_tokens(str(fn.get("arguments", "")))
    return n


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return REPLY_PRIMING_TOKENS + sum(message_tokens(m) for m in messages if isinstance(m, dict))


def max_output_tokens(body: dict[str, Any]) -> int | None:
    """``max_completion_tokens`` (current OpenAI name) wins over the legacy ``max_tokens``."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


_SPACES = re.compile(r"\s+")


def last_user_text(messages: Any) -> str:
    """Text of the last ``role: user`` message of a chat-like list ("" if there is none)."""
    items: list[Any] = messages if isinstance(messages, list) else []
    for m in reversed(items):
        if isinstance(m, dict) and m.get("role") == "user":
            return content_text(m.get("content"))[0]
    return ""


def echo_reply(last: str, limit: int | None) -> tuple[str, bool]:
    """(reply, truncated): the one reply rule of every route, cut to ``limit`` tokens (limit * 4 bytes)."""
    last = _SPACES.sub(" ", last).strip()[:MAX_ECHO_CHARS]
    text = ECHO_PREFIX + last if last else EMPTY_REPLY
    if limit is not None and count_tokens(text) > limit:
        return text.encode("utf-8")[: limit * 4].decode("utf-8", errors="ignore"), True
    return text, False


def reply_for(body: dict[str, Any]) -> tuple[str, str]:
    """(reply text, finish_reason) for a validated chat request: an echo of the last user message."""
    text, cut = echo_reply(last_user_text(body.get("messages")), max_output_tokens(body))
    return text, "length" if cut else "stop"


def make_usage(prompt: int, completion: int) -> dict[str, Any]:
    """OpenAI's usage object, with the detail fields the node may read."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def expected_usage(body: dict[str, Any]) -> dict[str, Any]:
    """The usage object the fake upstream reports for this chat request body (when it reports one)."""
    text, _ = reply_for(body)
    return make_usage(prompt_tokens(body.get("messages") or []), count_tokens(text))


_WORDS = re.compile(r"\S+\s*|\s+")


def stream_pieces(text: str, words: int = WORDS_PER_CHUNK) -> list[str]:
    """The content deltas of a streamed reply: a few words each; they join back to ``text`` exactly."""
    tokens = _WORDS.findall(text)
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)] or [""]
