"""Token usage, and the documented estimate used when an upstream gives none.

Estimate (used only when the upstream sends no ``usage``: a stream cut by the client or the
upstream, or a response without it): one token per 4 UTF-8 bytes of text, rounded up, at least
one token on each side. It counts the prompt's text and the text actually delivered.
"""

from __future__ import annotations

from dataclasses import dataclass

from routstr.core.money import ceil_div

BYTES_PER_TOKEN_ESTIMATE = 4


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one request, whatever the dialect it was reported in: the canonical usage, which each
    dialect module converts its own reports to (``routstr.dialects.*.to_usage``) and, when it must
    report it itself, from (``dialects.anthropic.from_usage``).

    ``prompt_tokens`` counts every input token, including those read from or written to a prompt
    cache (which ``cached_tokens`` and ``cache_write_tokens`` break out, to be priced apart);
    ``completion_tokens`` counts every output token, reasoning included.
    """

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    requests: int = 1  # units of the per-request price (e.g. images generated)


def estimate_tokens(text_bytes: int) -> int:
    return max(1, ceil_div(text_bytes, BYTES_PER_TOKEN_ESTIMATE))


def estimate_usage(prompt_text_bytes: int, delivered_text_bytes: int) -> Usage:
    return Usage(estimate_tokens(prompt_text_bytes), estimate_tokens(delivered_text_bytes), estimated=True)
