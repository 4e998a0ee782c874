"""A file a client uploaded (audio for transcription), as the node parsed it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes
