"""Real audio for tests and the demo: WAV files of silence, made with the standard library."""

from __future__ import annotations

import io
import wave


def wav_silence(seconds: float, *, rate: int = 8000, sample_width: int = 1, channels: int = 1) -> bytes:
    """A PCM WAV file of ``seconds`` of silence (8 kHz 8-bit mono by default: 8 KB a second)."""
    frames = round(seconds * rate)
    silent = b"\x80" if sample_width == 1 else bytes(sample_width)  # 8-bit PCM is unsigned
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(sample_width)
        w.setframerate(rate)
        w.writeframes(silent * (frames * channels))
    return out.getvalue()
