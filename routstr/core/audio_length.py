"""How long an uploaded audio file plays, read from its headers: transcriptions are priced per minute.

Pure (bytes in, seconds out, no I/O): :func:`audio_seconds` answers ``None`` when the duration cannot be
read, and the caller refuses the upload. Formats (those OpenAI's transcription endpoint takes that can be
read without decoding): WAV (PCM, float, A-law, mu-law), MP3/MPEG, FLAC, Ogg (Vorbis, Opus, FLAC, Speex)
and MP4/M4A. Not WebM (mutagen cannot read Matroska) nor anything else.

Bounded on hostile input, since this runs in the event loop before the caller is authenticated:

* only stream headers are read, never tags: mutagen's full loaders parse ID3 frames and Vorbis comments,
  and a 10 MB ID3 tag of tiny frames takes minutes to load;
* WAV is read here (a walk of at most ``MAX_WAV_CHUNKS`` chunks) rather than by mutagen, which walks every
  chunk (seconds on a file of a million empty chunks) and counts samples by ``block_align``, a field the
  decoder ignores (a lying one would make hours of audio read as seconds);
* mutagen reads through a file object that refuses more than ``MAX_FILE_OPS`` reads and seeks (MP4 atom
  walks, Ogg page walks), and every exception it raises (not only ``MutagenError``: ``RecursionError``,
  ``struct.error``, ``IndexError``...) means "unreadable";
* a duration that is not finite, not positive or longer than ``MAX_SECONDS`` is refused.

The duration is what the headers say: a file crafted to claim less than it holds (a lying MP4 ``mdhd``,
Ogg granule or MP3 frame header) is undercharged, as only decoding could tell.
"""

from __future__ import annotations

import io
import math
import struct
from typing import Any

from mutagen.flac import StreamInfo as FlacStreamInfo
from mutagen.mp3 import MPEGInfo, skip_id3
from mutagen.mp4 import MP4Info
from mutagen.mp4._atom import Atoms  # what MP4.load uses; mutagen.mp4 re-exports it implicitly
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggspeex import OggSpeex
from mutagen.oggvorbis import OggVorbis

MAX_SECONDS = 24 * 3600.0  # longer than this is a lying header, not an upload
MAX_FILE_OPS = 10_000  # reads + seeks mutagen may make on one file
MAX_WAV_CHUNKS = 256
SECONDS_PER_UNIT = 60  # transcriptions are priced per started minute

# WAV format tags whose samples are fixed-size: the duration follows from the data size
_WAV_FIXED = {1: (8, 16, 24, 32), 3: (32, 64), 6: (8,), 7: (8,)}  # PCM, IEEE float, A-law, mu-law
_WAV_EXTENSIBLE = 0xFFFE
_MPEG_NAMES = (".mp3", ".mpga", ".mpeg", ".mpg", ".mp2")
_MPEG_TYPES = ("audio/mpeg", "audio/mp3", "audio/mpga", "audio/x-mpeg", "audio/mpeg3", "audio/x-mp3")


def audio_seconds(data: bytes, filename: str = "", content_type: str = "") -> float | None:
    """The playing time of ``data`` in seconds, or ``None`` if it cannot be read or makes no sense.

    ``filename`` and ``content_type`` only help to recognise raw MPEG audio (which has no magic
    number); every other format is recognised by its first bytes."""
    try:
        seconds = _read(data, filename.lower(), content_type.lower())
    except Exception:  # hostile bytes: whatever the parser tripped on, the file is unreadable
        return None
    if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= MAX_SECONDS:
        return None
    return seconds


def started_minutes(seconds: float) -> int:
    """The units a transcription of ``seconds`` of audio is charged: each started minute, at least 1."""
    return max(1, math.ceil(seconds / SECONDS_PER_UNIT - 1e-9))  # 60.000000001 is float noise, not 2


class _TooComplex(Exception):
    pass


class _Budgeted(io.BytesIO):
    """The upload as mutagen reads it: refuses to be read or sought more than ``MAX_FILE_OPS`` times."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.ops = MAX_FILE_OPS

    def _spend(self) -> None:
        self.ops -= 1
        if self.ops < 0:
            raise _TooComplex("too many reads")

    def read(self, size: int | None = -1, /) -> bytes:
        self._spend()
        return super().read(size)

    def seek(self, pos: int, whence: int = 0, /) -> int:
        self._spend()
        return super().seek(pos, whence)


def _read(data: bytes, filename: str, content_type: str) -> float | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _wav_seconds(data)
    f = _Budgeted(data)
    # MP3 (and some FLAC) files start with ID3v2 tags: skipped by their sizes, never parsed
    skip_id3(f)  # type: ignore[no-untyped-call]
    start = f.tell()
    head = data[start : start + 512]
    info: Any = None
    if head[:4] == b"fLaC":
        info = _flac_stream_info(f, start + 4)
    elif head[:4] == b"OggS":
        info = _ogg_info(f, start, head)
    elif head[4:8] == b"ftyp":
        info = MP4Info(Atoms(f), f)  # type: ignore[no-untyped-call]
    elif (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0) or _says_mpeg(
        filename, content_type
    ):
        info = MPEGInfo(f)  # raw MPEG frames: no magic number, a frame sync (or the name says so)
    # else: unknown (WebM, AAC, AIFF...) or not audio
    if info is None or f.ops < 0:  # (ops < 0: the budget ran out in a parser that swallowed the error)
        return None
    length = info.length
    return float(length) if isinstance(length, (int, float)) else None


def _says_mpeg(filename: str, content_type: str) -> bool:
    return filename.endswith(_MPEG_NAMES) or content_type.split(";")[0].strip() in _MPEG_TYPES


def _flac_stream_info(f: _Budgeted, offset: int) -> Any:
    """STREAMINFO is always the first metadata block; the others (tags, pictures) are not read."""
    f.seek(offset)
    header = f.read(4)
    if len(header) < 4 or header[0] & 0x7F != 0:
        return None
    return FlacStreamInfo(f.read(int.from_bytes(header[1:4], "big")))  # type: ignore[no-untyped-call]


def _no_tags(fileobj: Any, info: Any) -> None:
    return None


class _OggVorbis(OggVorbis):
    _Tags = staticmethod(_no_tags)  # type: ignore[assignment]


class _OggOpus(OggOpus):
    _Tags = staticmethod(_no_tags)  # type: ignore[assignment]


class _OggFLAC(OggFLAC):
    _Tags = staticmethod(_no_tags)  # type: ignore[assignment]


class _OggSpeex(OggSpeex):
    _Tags = staticmethod(_no_tags)  # type: ignore[assignment]


def _ogg_info(f: _Budgeted, start: int, head: bytes) -> Any:
    """The codec's identification header is in the first page; tags (comment packets) are skipped."""
    for magic, kind in (
        (b"\x01vorbis", _OggVorbis),
        (b"OpusHead", _OggOpus),
        (b"\x7fFLAC", _OggFLAC),
        (b"Speex   ", _OggSpeex),
    ):
        if magic in head:
            f.seek(start)
            return kind(f).info
    return None


def _wav_seconds(data: bytes) -> float | None:
    """Sum of the ``data`` chunks over the byte rate of fixed-size samples, as a decoder plays it.

    A ``data`` chunk claiming more than the file holds (a header written before the length was known)
    counts what is there. Compressed WAV codecs (ADPCM, GSM, MP3-in-WAV...) are not read."""
    fmt: tuple[int, int, int, int] | None = None  # format tag, channels, rate, bits per sample
    audio_bytes = 0
    pos, chunks = 12, 0
    while pos + 8 <= len(data):
        chunks += 1
        if chunks > MAX_WAV_CHUNKS:
            return None  # more chunks than any real recording has
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + size > len(data):
                return None
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _WAV_EXTENSIBLE:
                if size < 40:
                    return None
                (tag,) = struct.unpack_from("<H", data, body + 24)  # the sub-format GUID's first field
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            audio_bytes += min(size, len(data) - body)
        pos = body + size + (size & 1)
    if fmt is None:
        return None
    tag, channels, rate, bits = fmt
    if bits not in _WAV_FIXED.get(tag, ()) or channels < 1 or rate < 1:
        return None
    return audio_bytes / (rate * channels * (bits // 8))
