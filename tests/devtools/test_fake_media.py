"""Image generation and audio transcription (priced per request: no usage), with the official SDK."""

from __future__ import annotations

import base64
import time

import aiohttp
import openai
import orjson
import pytest
from openai import AsyncOpenAI

from routstr.devtools.audio_files import wav_silence

from .conftest import Upstream

WAV = wav_silence(1.5)  # 12,044 bytes


def client(up: Upstream) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=up.url, api_key="sk-test", max_retries=0)


async def test_images_urls(upstream: Upstream) -> None:
    resp = await client(upstream).images.generate(model="dall-e-3", prompt="a cat", n=3)
    assert resp.created > 0 and resp.usage is None
    assert [d.url for d in resp.data or []] == [f"https://example.invalid/img-{i}.png" for i in (1, 2, 3)]
    assert upstream.state.by_path == {"/v1/images/generations": 1}
    assert upstream.state.last_body == {"model": "dall-e-3", "prompt": "a cat", "n": 3}


async def test_images_b64_json(upstream: Upstream) -> None:
    resp = await client(upstream).images.generate(prompt="a dog", response_format="b64_json")
    (image,) = resp.data or []
    assert image.b64_json is not None and base64.b64decode(image.b64_json).startswith(b"\x89PNG\r\n\x1a\n")


async def test_images_validation(upstream: Upstream) -> None:
    c = client(upstream)
    with pytest.raises(openai.BadRequestError):
        await c.images.generate(model="dall-e-3", prompt="a cat", n=11)
    with pytest.raises(openai.BadRequestError) as e:
        await c.images.generate(model="dall-e-3", prompt="")
    assert e.value.code == "missing_required_parameter"
    with pytest.raises(openai.NotFoundError):
        await c.images.generate(model="nope", prompt="a cat")


async def test_transcription(upstream: Upstream) -> None:
    resp = await client(upstream).audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV))
    assert resp.text == f"fake transcription of {len(WAV)} bytes"
    assert upstream.state.by_path == {"/v1/audio/transcriptions": 1} and upstream.state.by_model == {
        "whisper-1": 1
    }
    assert upstream.state.last_body == {
        "model": "whisper-1",
        "file": {"filename": "a.wav", "bytes": len(WAV)},
    }
    assert upstream.state.last_headers["Content-Type"].startswith("multipart/form-data")


async def test_transcription_text_and_verbose_formats(upstream: Upstream) -> None:
    c = client(upstream)
    text = await c.audio.transcriptions.create(model="whisper-1", file=("a.wav", WAV), response_format="text")
    assert text.strip() == f"fake transcription of {len(WAV)} bytes"
    verbose = await c.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", WAV), response_format="verbose_json"
    )
    assert verbose.duration == 1.5  # read from the file, as the node reads it


async def test_transcription_refuses_what_is_not_audio(upstream: Upstream) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        await client(upstream).audio.transcriptions.create(model="whisper-1", file=("a.mp3", b"abc"))
    assert e.value.code == "invalid_value" and "Invalid file format" in e.value.message


async def test_transcription_checks_and_failures(upstream: Upstream) -> None:
    async def send(fields: dict[str, str], file: bytes | None = WAV) -> tuple[int, bytes]:
        form = aiohttp.FormData()
        for k, v in fields.items():
            form.add_field(k, v)
        if file is not None:
            form.add_field("file", file, filename="a.wav", content_type="audio/wav")
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"{upstream.url}/audio/transcriptions", data=form) as r,
        ):
            return r.status, await r.read()

    assert (await send({"model": "whisper-1"}, file=None))[0] == 400
    assert (await send({}))[0] == 400
    assert (await send({"model": "nope"}))[0] == 404
    status, raw = await send({"model": "fail-429"})
    assert status == 429 and orjson.loads(raw)["error"]["code"] == "rate_limit_exceeded"
    status, _ = await send({"model": "whisper-1", "fake_behavior": "fail-500"})
    assert status == 500
    t0 = time.monotonic()
    status, _ = await send({"model": "whisper-1", "fake_delay_ms": "120"})
    assert status == 200 and time.monotonic() - t0 >= 0.11
    with pytest.raises(openai.APIConnectionError):
        await client(upstream).audio.transcriptions.create(model="fail-connection-drop", file=("a.wav", WAV))
