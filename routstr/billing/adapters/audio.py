"""Audio transcription: ``POST /v1/audio/transcriptions`` (a multipart upload), priced per started minute
of audio: the model's per-request price in the pricing file is the price of a minute, and the minutes are
read from the uploaded file's headers (``routstr.core.audio_length``). A file whose duration cannot be
read is refused before anything is reserved. JSON answers only (``json``/``verbose_json``)."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import RequestFacts
from routstr.billing.adapters.unstreamed import Unstreamed, per_request
from routstr.core.audio_length import audio_seconds, started_minutes
from routstr.core.errors import InvalidRequest
from routstr.core.uploads import UploadedFile
from routstr.core.usage import Usage

JSON_FORMATS = ("json", "verbose_json")
READABLE = "WAV, MP3, FLAC, OGG (Vorbis, Opus) or M4A/MP4"


class AudioTranscriptions(Unstreamed):
    """Priced per unit like images, a unit being a started minute of the upload; the body is an upload."""

    upstream_path = "/audio/transcriptions"
    form_body = True
    # the upstream's answer does not say the duration: the relay charges the minutes read at inspect
    units_as_reserved = True

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required", details={"param": "model"})
        file = body.get("file")
        if not isinstance(file, UploadedFile):
            raise InvalidRequest("'file' (the audio) is required", details={"param": "file"})
        if body.get("response_format", "json") not in JSON_FORMATS:
            raise InvalidRequest(
                "this node answers transcriptions as json or verbose_json",
                details={"param": "response_format"},
            )
        if body.get("stream") in ("true", "True", "1"):
            raise InvalidRequest("transcriptions are not streamed by this node", details={"param": "stream"})
        # sync and in the event loop: bounded by audio_length (headers only, capped reads), ~ms per file
        seconds = audio_seconds(file.data, file.filename, file.content_type)
        if seconds is None:
            raise InvalidRequest(
                f"could not read how long the audio plays: send {READABLE} audio",
                code="unreadable_audio",
                details={"param": "file"},
            )
        return per_request(model, started_minutes(seconds))

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return Usage(0, 0, requests=1) if isinstance(response.get("text"), str) else None
