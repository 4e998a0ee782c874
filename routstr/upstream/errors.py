"""Turning an upstream's error reply into the spec's envelope.

A 4xx the request caused keeps its status (the user can fix it); the provider refusing *our* key
or failing is a 502; a 429 stays a 429 with its Retry-After. None of these costs the user anything.
"""

from __future__ import annotations

from typing import Any

import orjson

from routstr.core.errors import ApiError, InvalidRequest, NotFound, RateLimited, UpstreamError


def upstream_error(status: int, raw: bytes, retry_after: str | None) -> ApiError:
    message = _message(raw) or f"upstream answered HTTP {status}"
    details: dict[str, Any] = {"upstream_status": status}
    if status == 429:
        headers = {"Retry-After": retry_after} if retry_after else {}
        return RateLimited(f"Upstream rate limit: {message}", details=details, headers=headers)
    if status == 404:
        return NotFound(message, details=details, code="model_not_found")
    if status in (401, 403) or status >= 500 or status < 400:
        return UpstreamError(f"Upstream error: {message}", details=details)
    return InvalidRequest(message, details=details, status=status)


def _message(raw: bytes) -> str | None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw[:300].decode(errors="replace").strip()
        return text or None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return None
