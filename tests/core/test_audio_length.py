"""The duration of an uploaded audio file (transcriptions are priced per started minute of it)."""

from __future__ import annotations

import functools
import math
import random
import struct
import time

import pytest
from mutagen.ogg import OggPage

from routstr.core import audio_length
from routstr.core.audio_length import MAX_SECONDS, audio_seconds, started_minutes
from routstr.core.errors import InvalidRequest
from routstr.core.uploads import UploadedFile
from routstr.devtools.audio_files import wav_silence
from routstr.dialects.openai_media import TRANSCRIPTIONS_CLIENT, TRANSCRIPTIONS_UPSTREAM

# ---- files of other formats, built by hand: only their headers matter to the reader ----


def mp3(seconds: float) -> bytes:
    """CBR MPEG-1 layer III frames (128 kbit/s, 44.1 kHz, 1152 samples each) of zeros."""
    frame = b"\xff\xfb\x90\x00" + bytes(413)
    return frame * round(seconds * 44100 / 1152)


def synchsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def id3(frames: bytes) -> bytes:
    return b"ID3\x04\x00\x00" + synchsafe(len(frames)) + frames


def flac(seconds: float, rate: int = 16000, total: int | None = None) -> bytes:
    samples = round(seconds * rate) if total is None else total
    packed = (rate << 44) | (0 << 41) | (15 << 36) | samples  # mono, 16 bits
    streaminfo = struct.pack(">HH", 4096, 4096) + bytes(6) + packed.to_bytes(8, "big") + bytes(16)
    return b"fLaC" + b"\x80" + len(streaminfo).to_bytes(3, "big") + streaminfo


def ogg_page(
    packets: list[bytes], seq: int, granule: int, *, first: bool = False, last: bool = False, serial: int = 1
) -> bytes:
    page = OggPage()  # type: ignore[no-untyped-call]
    page.packets, page.sequence, page.position, page.serial = packets, seq, granule, serial
    page.first, page.last = first, last
    data: bytes = page.write()  # type: ignore[no-untyped-call]
    return data


def ogg_opus(seconds: float, *, ends: bool = True, serial: int = 1) -> bytes:
    pre_skip = 312
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<II", 0, 0)
    return (
        ogg_page([head], 0, 0, first=True, serial=serial)
        + ogg_page([tags], 1, 0, serial=serial)
        + ogg_page([b"\xf8\xff\xfe"], 2, round(seconds * 48000) + pre_skip, last=ends, serial=serial)
    )


def ogg_vorbis(seconds: float, rate: int = 16000) -> bytes:
    ident = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 1, rate, 0, 64000, 0, 0xB8, 1)
    comment = b"\x03vorbis" + struct.pack("<I", 0) + struct.pack("<I", 0) + b"\x01"
    return (
        ogg_page([ident], 0, 0, first=True)
        + ogg_page([comment], 1, 0)
        + ogg_page([b"\x00"], 2, round(seconds * rate), last=True)
    )


def atom(name: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + name + payload


def m4a(seconds: float, timescale: int = 44100) -> bytes:
    mdhd = atom(b"mdhd", bytes(12) + struct.pack(">II", timescale, round(seconds * timescale)) + bytes(4))
    hdlr = atom(b"hdlr", bytes(8) + b"soun" + bytes(13))
    moov = atom(b"moov", atom(b"trak", atom(b"mdia", mdhd + hdlr)))
    return atom(b"ftyp", b"M4A " + bytes(4) + b"M4A isom") + moov


def wav_fmt(tag: int, channels: int, rate: int, bits: int, block_align: int | None = None) -> bytes:
    align = channels * bits // 8 if block_align is None else block_align
    return b"fmt " + struct.pack("<IHHIIHH", 16, tag, channels, rate, rate * align, align, bits)


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def data_chunk(payload: bytes, claimed: int | None = None) -> bytes:
    return b"data" + struct.pack("<I", len(payload) if claimed is None else claimed) + payload


# ---- WAV ----


@pytest.mark.parametrize(("seconds", "minutes"), [(1, 1), (59, 1), (60, 1), (61, 2), (3600, 60)])
def test_wav_durations_and_minutes(seconds: int, minutes: int) -> None:
    rate = 8000 if seconds < 3600 else 200  # an hour at 200 Hz 8-bit is 720 KB
    assert audio_seconds(wav_silence(seconds, rate=rate), "clip.wav", "audio/wav") == seconds
    assert started_minutes(seconds) == minutes


def test_wav_of_other_sample_formats() -> None:
    assert audio_seconds(wav_silence(2, rate=44100, sample_width=2, channels=2)) == 2.0
    assert audio_seconds(wav_silence(0.25, rate=16000, sample_width=3)) == 0.25
    mulaw = riff(wav_fmt(7, 1, 8000, 8), data_chunk(bytes(8000 * 3)))
    assert audio_seconds(mulaw) == 3.0
    extensible_fmt = b"fmt " + struct.pack("<IHHIIHHHHI", 40, 0xFFFE, 1, 8000, 16000, 2, 16, 22, 16, 4)
    extensible = riff(extensible_fmt + struct.pack("<H", 1) + bytes(14), data_chunk(bytes(16000 * 5)))
    assert audio_seconds(extensible) == 5.0


def test_wav_is_timed_by_its_sample_size_not_by_a_lying_block_align() -> None:
    """mutagen divides by ``block_align``, which the decoder ignores: 60 s would read as 60/4000 s."""
    lying = riff(wav_fmt(1, 1, 8000, 8, block_align=4000), data_chunk(b"\x80" * 8000 * 60))
    assert audio_seconds(lying) == 60.0


def test_wav_data_chunks_are_summed_and_counted_as_far_as_the_file_goes() -> None:
    two = riff(
        wav_fmt(1, 1, 8000, 8), data_chunk(bytes(8000)), b"LIST\x04\x00\x00\x00INFO", data_chunk(bytes(8000))
    )
    assert audio_seconds(two) == 2.0
    # a header written before the length was known (streamed): what is in the file counts
    streamed = riff(wav_fmt(1, 1, 8000, 8), data_chunk(bytes(8000), claimed=0xFFFFFFFF))
    assert audio_seconds(streamed) == 1.0


def test_wav_header_claiming_an_absurd_length() -> None:
    header_only = wav_silence(1)[:44]
    absurd = bytearray(header_only)
    struct.pack_into("<I", absurd, 40, 0xFFFFFFF0)  # ~149 hours at 8 kHz 8-bit
    assert audio_seconds(bytes(absurd)) is None  # nothing behind it: no audio at all
    assert audio_seconds(bytes(absurd) + b"\x80" * 8000) == 1.0  # counted as far as the file goes
    claims_an_hour = bytearray(header_only)
    struct.pack_into("<I", claims_an_hour, 40, 8000 * 3600)
    assert audio_seconds(bytes(claims_an_hour)) is None
    # a real file that plays longer than anything a transcription upload can be: 1 Hz, 100,000 samples
    assert audio_seconds(wav_silence(100_000, rate=1)) is None
    assert audio_seconds(wav_silence(80_000, rate=1)) == 80_000.0 < MAX_SECONDS


@pytest.mark.parametrize(
    "data",
    [
        riff(wav_fmt(1, 1, 0, 8), data_chunk(bytes(800))),  # sample rate 0
        riff(wav_fmt(1, 0, 8000, 8), data_chunk(bytes(800))),  # no channels
        riff(wav_fmt(1, 1, 8000, 12), data_chunk(bytes(800))),  # odd sample size
        riff(wav_fmt(2, 1, 8000, 4), data_chunk(bytes(800))),  # MS ADPCM: compressed, not read
        riff(data_chunk(bytes(800))),  # no fmt chunk
        riff(wav_fmt(1, 1, 8000, 8)),  # no data chunk
        riff(wav_fmt(1, 1, 8000, 8), data_chunk(b"")),  # zero samples
        wav_silence(1)[:11],  # truncated before the RIFF type
        wav_silence(1)[:20],  # truncated inside the fmt chunk
        wav_silence(1)[:30],
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",
    ],
)
def test_unreadable_wav(data: bytes) -> None:
    assert audio_seconds(data, "a.wav", "audio/wav") is None


# ---- other formats ----


def test_mp3() -> None:
    seconds = audio_seconds(mp3(61.5), "talk.mp3", "audio/mpeg")
    assert seconds is not None and abs(seconds - 61.5) < 0.5 and started_minutes(seconds) == 2
    # ID3v2 tags in front are skipped by their size; the name does not matter when frames are there
    tagged = id3(b"TIT2" + synchsafe(6) + b"\x00\x00\x03title") + mp3(10)
    seconds = audio_seconds(tagged, "blob.bin", "application/octet-stream")
    assert seconds is not None and abs(seconds - 10) < 0.2


def test_flac_ogg_and_m4a() -> None:
    assert audio_seconds(flac(61.5), "a.flac") == 61.5
    assert audio_seconds(id3(b"TIT2" + synchsafe(2) + b"\x00\x00\x03a") + flac(3)) == 3.0
    assert audio_seconds(ogg_opus(61.5), "a.ogg") == 61.5
    assert audio_seconds(ogg_vorbis(90), "a.oga") == 90.0
    assert audio_seconds(m4a(61.5), "a.m4a") == 61.5
    assert audio_seconds(m4a(7200, timescale=1000)) == 7200.0


@pytest.mark.parametrize(
    "data",
    [
        flac(0),  # length unknown (a streamed FLAC): refused, not free
        flac(0, rate=1, total=2**36 - 1),  # ~2,000 years
        m4a(0),
        m4a(10, timescale=0),
        b"\x1aE\xdf\xa3" + bytes(100),  # WebM/Matroska: mutagen cannot read it
        b"FORM\x00\x00\x00\x04AIFF",
    ],
)
def test_unreadable_or_absurd_durations(data: bytes) -> None:
    assert audio_seconds(data, "a.audio") is None


@pytest.mark.parametrize(
    ("data", "filename", "content_type"),
    [
        (b"", "a.wav", "audio/wav"),
        (b"abc", "a.mp3", "audio/mpeg"),
        (b"x" * 1234, "a.wav", "audio/wav"),
        (random.Random(1).randbytes(50_000), "a.mp3", "audio/mpeg"),
        (random.Random(2).randbytes(50_000), "", ""),
        (bytes(50_000), "a.mp3", ""),
        (b"\xff\xfb\x90\x00" * 10_000, "a.mp3", ""),  # frame syncs everywhere, no valid frame
        (b"OggS" + random.Random(3).randbytes(5000), "a.ogg", "audio/ogg"),
        (b"fLaC" + random.Random(4).randbytes(5000), "a.flac", ""),
        (atom(b"ftyp", b"M4A ") + random.Random(5).randbytes(5000), "a.m4a", ""),
        (mp3(5)[:3], "a.mp3", ""),  # a truncated frame header
    ],
)
def test_garbage_is_unreadable(data: bytes, filename: str, content_type: str) -> None:
    assert audio_seconds(data, filename, content_type) is None


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, -math.inf, MAX_SECONDS + 1])
def test_nonsense_durations_are_refused(monkeypatch: pytest.MonkeyPatch, bad: float) -> None:
    monkeypatch.setattr(audio_length, "_read", lambda *_: bad)
    assert audio_seconds(b"whatever") is None


def test_any_exception_of_the_parser_means_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> float:
        raise RecursionError("deep")

    monkeypatch.setattr(audio_length, "_read", boom)
    assert audio_seconds(b"whatever") is None


def test_started_minutes() -> None:
    assert [started_minutes(s) for s in (0.01, 1, 59.9, 60, 60.5, 119, 120, 121, 3600)] == [
        1, 1, 1, 1, 2, 2, 2, 3, 60,
    ]  # fmt: skip
    assert started_minutes(60 * (1 + 1e-15)) == 1  # float noise is not a started minute


# ---- hostile files: bounded work (mutagen's own loaders take seconds to minutes on these) ----

MB = 1024 * 1024


@functools.cache
def hostile_files() -> dict[str, bytes]:
    tiny_frames = b"".join(b"PRIV" + synchsafe(6) + b"\x00\x00" + b"o%05d" % i for i in range(3 * MB // 16))
    wav = wav_silence(1)
    return {
        # mutagen.File parses every frame: ~200 s for 10 MB; here the tag is skipped by its size
        "id3 of tiny frames": id3(tiny_frames) + mp3(5),
        "stacked id3 headers": b"ID3\x04\x00\x00\x00\x00\x00\x01\x00" * (3 * MB // 11),
        # mutagen's WAVE walks every chunk: ~7 s for 10 MB
        "wav of empty chunks": riff(wav[12:36], b"abcd\x00\x00\x00\x00" * (3 * MB // 8), wav[36:]),
        "mp4 of empty atoms": atom(b"ftyp", b"M4A " + bytes(4)) + b"\x00\x00\x00\x08free" * (3 * MB // 8),
        "mp4 nested deeper than the stack": atom(b"ftyp", b"mp42" + bytes(4))
        + b"".join(struct.pack(">I", 3 * MB - 8 * i) + b"moov" for i in range(3 * MB // 8)),
        # a stream that does not end, muxed with another: mutagen reads every page to find its last
        "ogg of tiny muxed pages": ogg_opus(10, ends=False)
        + b"".join(ogg_page([b"x"], i, 0, serial=2) for i in range(3 * MB // 29)),
    }


@pytest.mark.parametrize("name", list(hostile_files()))
def test_hostile_files_are_quick(name: str) -> None:
    data = hostile_files()[name]
    t0 = time.monotonic()
    seconds = audio_seconds(data, "a.mp3", "audio/mpeg")
    assert time.monotonic() - t0 < 0.5
    if name == "id3 of tiny frames":
        assert seconds is not None and abs(seconds - 5) < 0.2
    else:
        assert seconds is None


# ---- the adapter: inspect reads the minutes, refuses what it cannot read ----

ADAPTER = TRANSCRIPTIONS_CLIENT


def upload(data: bytes, name: str = "clip.wav", ctype: str = "audio/wav") -> dict[str, object]:
    return {"model": "whisper-1", "file": UploadedFile(name, ctype, data)}


@pytest.mark.parametrize(("seconds", "units"), [(1, 1), (59, 1), (60, 1), (61, 2), (150, 3)])
def test_inspect_prices_each_started_minute(seconds: int, units: int) -> None:
    body = upload(wav_silence(seconds, rate=1000))
    facts = ADAPTER.inspect(body, 0)
    assert facts.requests == units and facts.model == "whisper-1" and not facts.stream
    assert not facts.has_output and facts.prompt_bound_tokens == 0


def test_inspect_of_other_formats() -> None:
    assert ADAPTER.inspect(upload(mp3(61.5), "a.mp3", "audio/mpeg"), 0).requests == 2
    assert ADAPTER.inspect(upload(ogg_opus(600), "a.ogg", "audio/ogg"), 0).requests == 10


def test_adapter_charges_the_units_it_reserved() -> None:
    assert TRANSCRIPTIONS_UPSTREAM.units_as_reserved is True


@pytest.mark.parametrize("data", [b"x" * 1234, b"", wav_silence(1)[:20], flac(0)])
def test_inspect_refuses_unreadable_audio(data: bytes) -> None:
    with pytest.raises(InvalidRequest) as e:
        ADAPTER.inspect(upload(data), 0)
    assert e.value.status == 400 and e.value.code == "unreadable_audio"
    assert e.value.details == {"param": "file"}


def test_inspect_checks_the_cheap_fields_first() -> None:
    with pytest.raises(InvalidRequest) as e:
        ADAPTER.inspect({**upload(b"garbage"), "response_format": "srt"}, 0)
    assert e.value.details == {"param": "response_format"}
    with pytest.raises(InvalidRequest) as e:
        ADAPTER.inspect({"file": UploadedFile("a.wav", "audio/wav", b"garbage")}, 0)
    assert e.value.details == {"param": "model"}
