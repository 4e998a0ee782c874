"""OpenAI's endpoints that neither stream nor generate text, both sides of each:

- embeddings (``POST /v1/embeddings``), billed on input tokens (nothing is generated);
- image generation (``POST /v1/images/generations``), priced per image by the model's per-request price
  in the pricing file (a model without one is refused rather than given away);
- audio transcription (``POST /v1/audio/transcriptions``, a multipart upload), priced per started
  minute of audio: the model's per-request price is the price of a minute, and the minutes are read
  from the uploaded file's headers (``routstr.core.audio_length``). A file whose duration cannot be read
  is refused before anything is reserved. JSON answers only (``json``/``verbose_json``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from routstr.core.audio_length import audio_seconds, started_minutes
from routstr.core.errors import InvalidRequest
from routstr.core.uploads import UploadedFile
from routstr.core.usage import Usage
from routstr.dialects import openai_chat
from routstr.dialects.cost import put_cost
from routstr.dialects.fields import require_model, text_bytes
from routstr.dialects.sides import RequestFacts

MAX_IMAGES = 10
JSON_FORMATS = ("json", "verbose_json")
READABLE = "WAV, MP3, FLAC, OGG (Vorbis, Opus) or M4A/MP4"


def per_request(model: str, units: int) -> RequestFacts:
    """A request priced only per unit (images, transcriptions): no tokens in, none out."""
    return RequestFacts(
        model=model,
        stream=False,
        prompt_bound_tokens=0,
        prompt_text_bytes=0,
        requested_max_output=None,
        wants_stream_usage=False,
        has_output=False,
        requests=units,
    )


# --- the client sides ----------------------------------------------------------------------------


def inspect_embeddings(body: dict[str, Any], raw_len: int) -> RequestFacts:
    model = require_model(body)
    given = body.get("input")
    if not isinstance(given, str | list) or not given:
        raise InvalidRequest("'input' must be a string or a non-empty array", details={"param": "input"})
    if body.get("stream"):
        raise InvalidRequest("embeddings cannot be streamed", details={"param": "stream"})
    return RequestFacts(
        model=model,
        stream=False,
        prompt_bound_tokens=raw_len,
        prompt_text_bytes=text_bytes(given),
        requested_max_output=None,
        wants_stream_usage=False,
        has_output=False,
    )


def inspect_images(body: dict[str, Any], raw_len: int) -> RequestFacts:
    model = require_model(body)
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise InvalidRequest("'prompt' is required and must be a string", details={"param": "prompt"})
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_IMAGES:
        raise InvalidRequest(f"'n' must be between 1 and {MAX_IMAGES}", details={"param": "n"})
    if body.get("stream"):
        raise InvalidRequest("image generation is not streamed by this node", details={"param": "stream"})
    return per_request(model, n)


def inspect_transcription(body: dict[str, Any], raw_len: int) -> RequestFacts:
    """Priced per unit like images, a unit being a started minute of the upload."""
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


class MediaClient:
    """The client side of an endpoint without output tokens: nothing to cap."""

    __slots__ = ("_inspect", "form_body", "name")

    def __init__(
        self, name: str, inspect: Callable[[dict[str, Any], int], RequestFacts], form_body: bool = False
    ) -> None:
        self.name = name
        self._inspect = inspect
        self.form_body = form_body

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        return self._inspect(body, raw_len)

    def set_max_output(self, body: dict[str, Any], tokens: int) -> None:
        return None

    def attach_cost(self, obj: dict[str, Any], cost: dict[str, Any]) -> None:
        put_cost(obj, cost)


EMBEDDINGS_CLIENT = MediaClient("embeddings", inspect_embeddings)
IMAGES_CLIENT = MediaClient("image_generations", inspect_images)
TRANSCRIPTIONS_CLIENT = MediaClient("audio_transcriptions", inspect_transcription, form_body=True)


# --- the upstream sides --------------------------------------------------------------------------


def embeddings_usage(response: dict[str, Any]) -> Usage | None:
    u = openai_chat.to_usage(response.get("usage"))
    return None if u is None else Usage(u.prompt_tokens, 0)


def images_usage(response: dict[str, Any]) -> Usage | None:
    data = response.get("data")
    return Usage(0, 0, requests=len(data)) if isinstance(data, list) else None  # the images delivered


def transcription_usage(response: dict[str, Any]) -> Usage | None:
    return Usage(0, 0, requests=1) if isinstance(response.get("text"), str) else None


class MediaUpstream:
    """The upstream side of an unstreamed endpoint: only its answer's usage differs."""

    __slots__ = ("_usage", "form_body", "path", "units_as_reserved")
    end_markers: tuple[bytes, ...] = (b"[DONE]",)

    def __init__(
        self,
        path: str,
        usage: Callable[[dict[str, Any]], Usage | None],
        form_body: bool = False,
        units_as_reserved: bool = False,
    ) -> None:
        self.path = path
        self._usage = usage
        self.form_body = form_body
        self.units_as_reserved = units_as_reserved

    def prepare_stream(self, body: dict[str, Any]) -> bool:
        return False

    def usage(self, response: dict[str, Any]) -> Usage | None:
        return self._usage(response)

    def may_carry_usage(self, data: bytes) -> bool:
        return False

    def is_usage_only_event(self, event: dict[str, Any]) -> bool:
        return False

    def is_end_event(self, payload: bytes) -> bool:
        return payload == b"[DONE]"

    def may_end_a_choice(self, payload: bytes) -> bool:
        return False

    def merge_usage(self, earlier: Usage | None, later: Usage) -> Usage:
        return later

    def event_text_bytes(self, event: dict[str, Any]) -> int:
        return 0

    def delivered_bytes(self, response: dict[str, Any]) -> int:
        return 0


EMBEDDINGS_UPSTREAM = MediaUpstream("/embeddings", embeddings_usage)
IMAGES_UPSTREAM = MediaUpstream("/images/generations", images_usage)
# the upstream's answer does not say the duration: the minutes read at inspect are charged
TRANSCRIPTIONS_UPSTREAM = MediaUpstream(
    "/audio/transcriptions", transcription_usage, form_body=True, units_as_reserved=True
)
