"""Legacy completions, embeddings and the Responses API: the same pipeline, each billed from its usage."""

from __future__ import annotations

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from routstr.devtools.audio_files import wav_silence
from routstr.devtools.fake_llm_openai import (
    expected_completion_usage,
    expected_embedding_usage,
    expected_responses_usage,
)
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from tests.conftest import NodeHandle
from tests.pricing_oracle import advertised_prices

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def price_of(node: NodeHandle, model: str, prompt: int, completion: int) -> int:
    """What that usage costs at the price ``/v1/models`` advertises for ``model``."""
    async with aiohttp.ClientSession() as http:
        price = await advertised_prices(http, node.v1, model)
    return price.cost(prompt, completion)


async def client_for(
    node: NodeHandle, wallet: TestWallet, mint_url: str, sats: int
) -> tuple[AsyncOpenAI, int]:
    token = await wallet.asend(mint_url, sats)
    return AsyncOpenAI(base_url=node.v1, api_key=token, max_retries=0), await node.app[NODE].auth.key_id(
        token
    )


async def test_legacy_completions(node: NodeHandle, wallet: TestWallet, mint_url: str):
    client, key_id = await client_for(node, wallet, mint_url, 30)
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say something short", "max_tokens": 12}
    r = await client.completions.create(**body)
    u = expected_completion_usage(body)
    cost = await price_of(node, body["model"], u["prompt_tokens"], u["completion_tokens"])
    assert r.choices[0].text and r.usage is not None
    assert r.usage.model_extra["cost"]["msats"] == cost  # type: ignore[index]
    stream = await client.completions.create(**body, stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.model_extra["cost"]["msats"] == cost  # type: ignore[index]
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 30_000 - 2 * cost


async def test_embeddings_are_billed_on_input_only(node: NodeHandle, wallet: TestWallet, mint_url: str):
    client, key_id = await client_for(node, wallet, mint_url, 10)
    body = {"model": "text-embedding-3-small", "input": ["first text to embed", "and a second one"]}
    r = await client.embeddings.create(**body)
    assert len(r.data) == 2 and len(r.data[0].embedding) > 0
    u = expected_embedding_usage(body)
    cost = await price_of(node, body["model"], u["prompt_tokens"], 0)
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 10_000 - cost
    charge = (await node.ledger_sums(key_id))["charge"]
    assert charge == cost


async def test_responses_api_streamed_and_not(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    client, key_id = await client_for(node, wallet, mint_url, 40)
    body = {
        "model": "gpt-4o-mini",
        "input": "Tell me about sats",
        "instructions": "Be brief",
        "max_output_tokens": 32,
    }
    r = await client.responses.create(**body)
    u = expected_responses_usage(body)
    cost = await price_of(node, body["model"], u["input_tokens"], u["output_tokens"])
    assert r.output_text and r.usage is not None
    assert r.usage.model_extra["cost"]["msats"] == cost  # type: ignore[index]

    final = None
    async with client.responses.stream(**body) as stream:
        async for event in stream:
            if event.type == "response.completed":
                final = event.response
    assert final is not None and final.usage is not None
    assert final.usage.model_extra["cost"]["msats"] == cost  # type: ignore[index]
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 40_000 - 2 * cost


async def test_responses_cut_by_the_output_limit_is_still_billed_from_usage(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    client, key_id = await client_for(node, wallet, mint_url, 20)
    body = {"model": "gpt-4o-mini", "input": "a long question " * 20, "max_output_tokens": 16, "stream": True}
    async with http.post(
        node.v1 + "/responses", json=body, headers={"Authorization": f"Bearer {client.api_key}"}
    ) as r:
        raw = await r.read()
    assert b"event: response.incomplete" in raw and b'"cost"' in raw
    u = expected_responses_usage(body)
    cost = await price_of(node, body["model"], u["input_tokens"], u["output_tokens"])
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 20_000 - cost


async def test_images_are_priced_per_image_and_unpriced_models_refused(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    client, key_id = await client_for(node, wallet, mint_url, 100)
    r = await client.images.generate(model="dall-e-3", prompt="a lighthouse made of sats", n=2)
    assert len(r.data or []) == 2
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 100_000 - 2 * 40_000  # request_sats = 40 per image
    before = node.upstream.state.requests_total
    async with http.post(
        node.v1 + "/images/generations",
        json={"model": "gpt-4o-mini", "prompt": "x"},
        headers={"Authorization": f"Bearer {client.api_key}"},
    ) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "model_not_priced"
    assert node.upstream.state.requests_total == before
    assert (await node.key_row(key_id)).balance_msat == 20_000


async def test_audio_transcription_upload_reaches_the_upstream_whole(
    node: NodeHandle, wallet: TestWallet, mint_url: str
):
    client, key_id = await client_for(node, wallet, mint_url, 10)
    audio = wav_silence(2)
    r = await client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", audio, "audio/wav"))
    assert r.text == f"fake transcription of {len(audio)} bytes"  # the upload reached the upstream whole
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 10_000 - 3_000  # request_sats = 3: the price of a started minute


async def test_audio_transcription_is_priced_per_started_minute(
    node: NodeHandle, wallet: TestWallet, mint_url: str
):
    """61 seconds are two started minutes: reserved and charged as 2 units (needs the relay to charge
    ``units_as_reserved`` adapters the units reserved, since the upstream's answer says no duration)."""
    client, key_id = await client_for(node, wallet, mint_url, 10)
    minute_and_a_second = wav_silence(61)
    r = await client.audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", minute_and_a_second, "audio/wav"), response_format="verbose_json"
    )
    assert r.duration == 61.0  # what the upstream heard
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 10_000 - 2 * 3_000
    assert (await node.ledger_sums(key_id))["charge"] == 6_000
    # 4 sats left: 59 seconds (one minute, 3 sats) fit, 61 seconds (6 sats) cannot be reserved
    before = node.upstream.state.requests_total
    with pytest.raises(openai.APIStatusError) as e:
        await client.audio.transcriptions.create(model="whisper-1", file=("talk.wav", minute_and_a_second))
    assert e.value.status_code == 402 and node.upstream.state.requests_total == before
    await client.audio.transcriptions.create(model="whisper-1", file=("short.wav", wav_silence(59)))
    assert (await node.assert_books_balance(key_id)).balance_msat == 1_000


async def test_audio_transcription_refuses_a_file_it_cannot_time(
    node: NodeHandle, wallet: TestWallet, mint_url: str
):
    client, key_id = await client_for(node, wallet, mint_url, 10)
    before = node.upstream.state.requests_total
    for name, data in [
        ("clip.wav", b"RIFF" + bytes(2048)),
        ("clip.mp3", b"not audio at all"),
        ("x.webm", b""),
    ]:
        with pytest.raises(openai.BadRequestError) as e:
            await client.audio.transcriptions.create(model="whisper-1", file=(name, data))
        assert e.value.code == "unreadable_audio"
        assert e.value.body["details"] == {"param": "file"}  # type: ignore[index]
    assert node.upstream.state.requests_total == before
    assert (await node.assert_books_balance(key_id)).balance_msat == 10_000
