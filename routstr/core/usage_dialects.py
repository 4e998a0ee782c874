"""Every provider reports usage its own way; here each dialect becomes one ``Usage``.

OpenAI chat/completions: ``prompt_tokens`` (cache reads inside, in ``prompt_tokens_details.cached_tokens``),
``completion_tokens`` (reasoning inside). OpenAI Responses: ``input_tokens``/``output_tokens`` with the
same details. Anthropic: ``input_tokens`` *excludes* cache reads and writes, which come apart as
``cache_read_input_tokens`` and ``cache_creation_input_tokens``.
"""

from __future__ import annotations

from typing import Any

from routstr.core.usage import Usage


def _int(d: Any, *path: str) -> int:
    for key in path:
        if not isinstance(d, dict):
            return 0
        d = d.get(key)
    return d if isinstance(d, int) and not isinstance(d, bool) and d > 0 else 0


def _has(u: Any, *keys: str) -> bool:
    return isinstance(u, dict) and all(isinstance(u.get(k), int) for k in keys)


def openai_chat(u: Any) -> Usage | None:
    if not _has(u, "prompt_tokens"):
        return None
    return Usage(
        prompt_tokens=_int(u, "prompt_tokens"),
        completion_tokens=_int(u, "completion_tokens"),
        cached_tokens=_int(u, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_int(u, "completion_tokens_details", "reasoning_tokens"),
    )


def openai_responses(u: Any) -> Usage | None:
    if not _has(u, "input_tokens", "output_tokens"):
        return None
    return Usage(
        prompt_tokens=_int(u, "input_tokens"),
        completion_tokens=_int(u, "output_tokens"),
        cached_tokens=_int(u, "input_tokens_details", "cached_tokens"),
        reasoning_tokens=_int(u, "output_tokens_details", "reasoning_tokens"),
    )


def anthropic(u: Any) -> Usage | None:
    if not _has(u, "input_tokens"):
        return None
    read = _int(u, "cache_read_input_tokens")
    written = _int(u, "cache_creation_input_tokens")
    return Usage(
        prompt_tokens=_int(u, "input_tokens") + read + written,
        completion_tokens=_int(u, "output_tokens"),
        cached_tokens=read,
        cache_write_tokens=written,
    )
