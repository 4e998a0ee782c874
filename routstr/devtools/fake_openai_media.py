"""``POST /v1/images/generations`` and ``/v1/audio/transcriptions``: priced per request, so no usage.

Images answer ``https://example.invalid/img-<i>.png`` (i = 1..n) or, with ``response_format: b64_json``, a
1x1 PNG; a transcription is ``"fake transcription of <N> bytes"`` (N = size of the uploaded ``file``), its
``verbose_json`` ``duration`` the file's, read as the node reads it; a file that is not readable audio is
refused (400) as OpenAI does. Failure models and ``fake_delay_ms`` work as elsewhere (for audio as
multipart form fields).
"""

from __future__ import annotations

import base64
import struct
import time
import zlib
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from routstr.core.audio_length import audio_seconds
from routstr.devtools.fake_http import (
    STATE,
    check_bearer,
    fail_or_wait,
    json_response,
    note_body,
    openai_error,
    plan_for,
    read_json,
)
from routstr.devtools.fake_llm import ApiError, model_not_found

MAX_IMAGES = 10
IMAGE_URL = "https://example.invalid/img-{}.png"
AUDIO_FORMATS = "['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']"


def _png_1x1() -> bytes:
    """A valid 1x1 transparent PNG: what ``b64_json`` answers carry."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x00\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


PNG_1X1_B64 = base64.b64encode(_png_1x1()).decode()


def _missing(param: str) -> ApiError:
    return ApiError(
        400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


async def images_generations(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if (denied := check_bearer(request, state)) is not None:
        return denied
    body, bad = await read_json(request, state, openai_error)
    if bad is not None:
        return bad
    if not isinstance(body, dict):
        return openai_error(ApiError(400, "Invalid body: expected a JSON object."))
    model = body.get("model")  # optional at OpenAI (dall-e-2 by default); checked when given
    if model is not None and (not isinstance(model, str) or not state.knows(model)):
        return openai_error(model_not_found(str(model)))
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return openai_error(_missing("prompt"))
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_IMAGES:
        msg = f"Invalid 'n': expected an integer from 1 to {MAX_IMAGES}, got {n!r}."
        return openai_error(ApiError(400, msg, param="n", code="invalid_value"))
    plan = plan_for(body, model)
    if (failed := await fail_or_wait(request, plan, state.timeout_s, openai_error)) is not None:
        return failed
    if body.get("response_format") == "b64_json":
        data: list[dict[str, Any]] = [{"b64_json": PNG_1X1_B64} for _ in range(n)]
    else:
        data = [{"url": IMAGE_URL.format(i)} for i in range(1, n + 1)]
    return json_response({"created": int(time.time()), "data": data})


async def audio_transcriptions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    if (denied := check_bearer(request, state)) is not None:
        return denied
    fields: dict[str, Any] = {}
    size = -1
    seconds: float | None = None
    if request.content_type.startswith("multipart/"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, FileField):
                data = value.file.read()
                fields[key] = {"filename": value.filename, "bytes": len(data)}
                if key == "file":
                    size = len(data)
                    seconds = audio_seconds(data, value.filename, value.content_type)
            else:
                fields[key] = value
    note_body(state, fields)  # last_body: the form fields, with the file as {"filename", "bytes"}
    model = fields.get("model")
    if not isinstance(model, str) or not model:
        return openai_error(ApiError(400, "you must provide a model parameter"))
    if not state.knows(model):
        return openai_error(model_not_found(model))
    if size < 0:
        return openai_error(_missing("file"))
    plan = plan_for(fields, model)
    if (failed := await fail_or_wait(request, plan, state.timeout_s, openai_error)) is not None:
        return failed
    if seconds is None:
        msg = f"Invalid file format. Supported formats: {AUDIO_FORMATS}"
        return openai_error(ApiError(400, msg, param="file", code="invalid_value"))
    text = f"fake transcription of {size} bytes"
    fmt = fields.get("response_format", "json")
    if fmt in ("text", "srt", "vtt"):
        return web.Response(text=text, content_type="text/plain")
    if fmt == "verbose_json":
        return json_response({"task": "transcribe", "language": "english", "duration": seconds, "text": text})
    return json_response({"text": text})
