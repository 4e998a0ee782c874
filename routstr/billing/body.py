"""Reading a JSON request body with the node's size limit."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from routstr.core.errors import InvalidRequest, PayloadTooLarge
from routstr.core.uploads import UploadedFile


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


async def read_form_body(request: web.Request, max_bytes: int) -> tuple[int, dict[str, Any]]:
    """A multipart/form-data body (audio uploads): text fields as strings, files as ``UploadedFile``."""
    if not request.content_type.startswith("multipart/"):
        raise InvalidRequest("Send this endpoint a multipart/form-data body")
    fields: dict[str, Any] = {}
    size = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or not part.name:
                continue
            data = await part.read(decode=True)
            size += len(data)
            if size > max_bytes:
                raise PayloadTooLarge(
                    f"Request body is larger than {max_bytes} bytes", details={"max_bytes": max_bytes}
                )
            if part.filename is not None:
                ctype = part.headers.get("Content-Type", "application/octet-stream")
                fields[part.name] = UploadedFile(part.filename, ctype, bytes(data))
            else:
                fields[part.name] = bytes(data).decode(errors="replace")
    except ValueError as e:
        raise InvalidRequest(f"Malformed multipart body: {e}") from None
    return size, fields
