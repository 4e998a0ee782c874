"""Audio transcription: ``POST /v1/audio/transcriptions`` (a multipart upload), priced per request
by the model's per-request price in the pricing file. JSON answers only (``json``/``verbose_json``)."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import RequestFacts
from routstr.billing.adapters.unstreamed import Unstreamed, per_request
from routstr.core.errors import InvalidRequest
from routstr.core.uploads import UploadedFile
from routstr.core.usage import Usage

JSON_FORMATS = ("json", "verbose_json")


class AudioTranscriptions(Unstreamed):
    """Priced per request like images; the body is an upload."""

    upstream_path = "/audio/transcriptions"
    form_body = True

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required", details={"param": "model"})
        if not isinstance(body.get("file"), UploadedFile):
            raise InvalidRequest("'file' (the audio) is required", details={"param": "file"})
        if body.get("response_format", "json") not in JSON_FORMATS:
            raise InvalidRequest(
                "this node answers transcriptions as json or verbose_json",
                details={"param": "response_format"},
            )
        if body.get("stream") in ("true", "True", "1"):
            raise InvalidRequest("transcriptions are not streamed by this node", details={"param": "stream"})
        return per_request(model, 1)

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return Usage(0, 0, requests=1) if isinstance(response.get("text"), str) else None
