"""The shapes of the node's answers: a JSON body, and the error envelope every client sees
(``{"error": {"type", "message", "code", "details"}}``, from ``core.errors.ApiError``)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from routstr.core.errors import ApiError

# the request id under the name Routstr's clients read (the reference node's header)
ROUTSTR_REQUEST_ID = "x-routstr-request-id"


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def error_response(err: ApiError, request_id: str | None = None) -> web.Response:
    headers = dict(err.headers)
    if request_id:
        headers["X-Request-ID"] = headers[ROUTSTR_REQUEST_ID] = request_id
    return web.Response(
        status=err.status, body=orjson.dumps(err.envelope()), content_type="application/json", headers=headers
    )
