"""OpenAI legacy completions: ``POST /v1/completions`` (a ``prompt``, answers in ``choices[].text``).

A list of prompts is answered choice set by choice set, and ``best_of`` generates that many per
prompt (billed, though only ``n`` come back): the output limit applies to each generation, so the
reservation and the cap cover prompts × max(n, best_of) of them.
"""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import RequestFacts
from routstr.billing.adapters.common import positive_int, require_model, stream_flag, wants_usage
from routstr.billing.adapters.inputs import check_tier, positive_count
from routstr.billing.adapters.openai_style import OpenAIStyle
from routstr.core.errors import InvalidRequest
from routstr.core.usage import BYTES_PER_TOKEN_ESTIMATE

MAX_CHOICES = 128
MAX_BEST_OF = 20  # OpenAI's own limit


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


class Completions(OpenAIStyle):
    upstream_path = "/completions"

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
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

    def _choice_text_bytes(self, choice: dict[str, Any]) -> int:
        text = choice.get("text")
        return len(text.encode()) if isinstance(text, str) else 0
