"""Reading a JSON request body with the node's size limit."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from routstr.core.errors import InvalidRequest, PayloadTooLarge


async def read_json_body(request: web.Request, max_bytes: int) -> tuple[bytes, dict[str, Any]]:
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge(
            f"Request body is larger than {max_bytes} bytes", details={"max_bytes": max_bytes}
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(
            f"Request body is larger than {max_bytes} bytes", details={"max_bytes": max_bytes}
        ) from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"Request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return raw, body
