"""The deterministic "model" of the other OpenAI routes: legacy completions, embeddings, Responses API.

Pure functions like :mod:`routstr.devtools.fake_llm` (whose ``count_tokens`` and chat ``prompt_tokens``
they reuse), so a test knows the exact usage, hence the exact charge, before it sends a request.

Token rules (each route's ``expected_*_usage(body)`` applies them):
    /v1/completions  prompt_tokens     = sum of count_tokens(prompt) over the prompts (a token-id list: len)
                     completion_tokens = sum of count_tokens(reply) over the prompts, one choice per prompt;
                     ``max_tokens`` defaults to 16, as OpenAI's legacy endpoint does
    /v1/embeddings   prompt_tokens = total_tokens = sum of count_tokens(input) (a token-id list: len)
    /v1/responses    input_tokens  = chat prompt_tokens of [instructions as a system message] + the input
                                     items (a string input is one user message; an item without a role,
                                     e.g. ``function_call_output``, counts as a tool message of its output)
                     output_tokens = count_tokens(reply), cut to ``max_output_tokens`` (OpenAI's minimum: 16)
Replies are the chat rule's ``"Echo: <last user text>"`` (for completions: the prompt itself).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from collections.abc import Container
from functools import lru_cache
from typing import Any

from routstr.devtools.fake_llm import (
    FAILURE_MODELS,
    ApiError,
    count_tokens,
    echo_reply,
    last_user_text,
    model_not_found,
    prompt_tokens,
)

COMPLETIONS_DEFAULT_MAX_TOKENS = 16
RESPONSES_MIN_OUTPUT_TOKENS = 16
EMBEDDING_DIMENSIONS = 8  # small: the vectors are for shape checks, not for similarity
MAX_EMBEDDING_DIMENSIONS = 3072

Prompt = str | list[int]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_model(body: Any, known: Container[str]) -> ApiError | None:
    if not isinstance(body, dict):
        return ApiError(400, "Invalid body: expected a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return ApiError(400, "you must provide a model parameter")
    if model not in known and model not in FAILURE_MODELS:
        return model_not_found(model)
    return None


def _missing(param: str) -> ApiError:
    return ApiError(
        400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _below_min(param: str, minimum: int, got: int) -> ApiError:
    msg = f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, but got {got}."
    return ApiError(400, msg, param=param, code="integer_below_min_value")


def _texts(value: Any, param: str) -> tuple[list[Prompt], ApiError | None]:
    """A string, a list of strings, a token-id list or a list of token-id lists, as OpenAI accepts."""
    if isinstance(value, str):
        return [value], None
    if isinstance(value, list) and value:
        if all(_is_int(v) for v in value):
            return [value], None
        if all(isinstance(v, str) or (isinstance(v, list) and all(_is_int(t) for t in v)) for v in value):
            return list(value), None
    if value is None:
        return [], _missing(param)
    return [], ApiError(400, f"Invalid '{param}': expected a string or an array.", param=param)


def _tokens(p: Prompt) -> int:
    return count_tokens(p) if isinstance(p, str) else len(p)


# -- /v1/completions ----------------------------------------------------------------------------------


def validate_completion(body: Any, known: Container[str]) -> ApiError | None:
    if (err := _check_model(body, known)) is not None:
        return err
    if (err := _texts(body.get("prompt"), "prompt")[1]) is not None:
        return err
    limit = body.get("max_tokens")
    if _is_int(limit) and limit < 1:
        return _below_min("max_tokens", 1, limit)
    return None


def completion_replies(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(text, finish_reason) per prompt: the echo of that prompt."""
    limit = body.get("max_tokens")
    limit = limit if _is_int(limit) else COMPLETIONS_DEFAULT_MAX_TOKENS
    out = []
    for p in _texts(body.get("prompt"), "prompt")[0]:
        text, cut = echo_reply(p if isinstance(p, str) else "", limit)
        out.append((text, "length" if cut else "stop"))
    return out


def completion_usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def expected_completion_usage(body: dict[str, Any]) -> dict[str, int]:
    """The usage the fake reports for this ``/v1/completions`` body."""
    prompt = sum(_tokens(p) for p in _texts(body.get("prompt"), "prompt")[0])
    return completion_usage(prompt, sum(count_tokens(t) for t, _ in completion_replies(body)))


# -- /v1/embeddings -----------------------------------------------------------------------------------


def validate_embeddings(body: Any, known: Container[str]) -> ApiError | None:
    if (err := _check_model(body, known)) is not None:
        return err
    inputs, err = _texts(body.get("input"), "input")
    if err is not None:
        return err
    if any(not p for p in inputs):
        return ApiError(400, "'$.input' is invalid. Please check the API reference.", param="input")
    dims = body.get("dimensions")
    if dims is not None and not (_is_int(dims) and 1 <= dims <= MAX_EMBEDDING_DIMENSIONS):
        return ApiError(400, f"Invalid 'dimensions': expected 1 to {MAX_EMBEDDING_DIMENSIONS}.", "dimensions")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        return ApiError(
            400, "Invalid 'encoding_format': expected 'float' or 'base64'.", param="encoding_format"
        )
    return None


def embedding_inputs(body: dict[str, Any]) -> list[Prompt]:
    return _texts(body.get("input"), "input")[0]


@lru_cache(maxsize=4096)
def _vector(key: bytes, dims: int) -> tuple[float, ...]:
    raw = b"".join(hashlib.sha256(i.to_bytes(4, "big") + key).digest() for i in range(dims // 8 + 1))
    v = [x / 2**31 - 1.0 for x in struct.unpack(f"<{dims}I", raw[: dims * 4])]
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    # round-trip through float32 so the float and the base64 answers hold the very same numbers
    return struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *(x / norm for x in v)))


def embedding_vector(item: Prompt, dims: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A unit vector of float32 values from a SHA-256 of the input: same input, same vector."""
    key = item.encode() if isinstance(item, str) else b"ids:" + ",".join(map(str, item)).encode()
    return list(_vector(key, dims))


def embedding_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: little-endian float32s (what the SDK asks for by default)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def expected_embedding_usage(body: dict[str, Any]) -> dict[str, int]:
    """The usage the fake reports for this ``/v1/embeddings`` body."""
    n = sum(_tokens(p) for p in embedding_inputs(body))
    return {"prompt_tokens": n, "total_tokens": n}


# -- /v1/responses ------------------------------------------------------------------------------------


def validate_responses(body: Any, known: Container[str]) -> ApiError | None:
    if (err := _check_model(body, known)) is not None:
        return err
    value = body.get("input")
    if value is None:
        return _missing("input")
    if not isinstance(value, str) and not (
        isinstance(value, list) and all(isinstance(item, dict) for item in value)
    ):
        return ApiError(400, "Invalid 'input': expected a string or an array of input items.", param="input")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        return ApiError(400, "Invalid 'instructions': expected a string.", param="instructions")
    limit = body.get("max_output_tokens")
    if _is_int(limit) and limit < RESPONSES_MIN_OUTPUT_TOKENS:
        return _below_min("max_output_tokens", RESPONSES_MIN_OUTPUT_TOKENS, limit)
    return None


def responses_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The Responses input as chat messages: what the token rule counts and the reply echoes."""
    messages: list[dict[str, Any]] = []
    if isinstance(instructions := body.get("instructions"), str):
        messages.append({"role": "system", "content": instructions})
    value = body.get("input")
    if isinstance(value, str):
        return [*messages, {"role": "user", "content": value}]
    for item in value if isinstance(value, list) else ():
        if isinstance(item, dict) and isinstance(item.get("role"), str):
            messages.append(item)
        elif isinstance(item, dict):
            output = item.get("output")
            messages.append({"role": "tool", "content": output if isinstance(output, str) else ""})
    return messages


def responses_reply(body: dict[str, Any]) -> tuple[str, bool]:
    """(text, truncated): truncated answers have ``status: "incomplete"``, as OpenAI's do."""
    limit = body.get("max_output_tokens")
    return echo_reply(last_user_text(responses_messages(body)), limit if _is_int(limit) else None)


def responses_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def expected_responses_usage(body: dict[str, Any]) -> dict[str, Any]:
    """The usage the fake reports for this ``/v1/responses`` body."""
    return responses_usage(prompt_tokens(responses_messages(body)), count_tokens(responses_reply(body)[0]))
