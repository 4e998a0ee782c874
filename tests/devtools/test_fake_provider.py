"""The fake provider of the adversarial tests: long answers, n/best_of, honest usage, tools, cuts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from routstr.devtools.fake_provider import FakeProvider, start_fake_provider
from routstr.devtools.fake_provider_model import (
    IMAGE_TOKENS,
    PER_MESSAGE_TOKENS,
    STORED_CONTEXT_TOKENS,
    arguments,
    tokens_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")
ANTHROPIC = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def provider() -> AsyncIterator[FakeProvider]:
    p = await start_fake_provider(models=("m",), api_key="k")
    yield p
    await p.stop()


async def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s:
        h = headers if headers is not None else {"Authorization": "Bearer k"}
        async with s.post(url, json=body, headers=h) as r:
            return r.status, await r.read()


def events(raw: bytes) -> list[Any]:
    out = []
    for ev in raw.split(b"\n\n"):
        for line in ev.split(b"\n"):
            if line.startswith(b"data: ") and line[6:] != b"[DONE]":
                out.append(orjson.loads(line[6:]))
    return out


def chat(content: Any = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


async def test_models_and_auth(provider: FakeProvider) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(provider.url + "/models", headers={"Authorization": "Bearer k"}) as r:
            assert [m["id"] for m in (await r.json())["data"]] == ["m"]
    status, _ = await post(provider.url + "/chat/completions", chat(), {"Authorization": "Bearer no"})
    assert status == 401
    status, _ = await post(provider.url + "/messages", {**chat(), "max_tokens": 1}, {"x-api-key": "k"})
    assert status == 400  # no anthropic-version


async def test_chat_writes_to_the_limit_n_times_with_exact_usage(provider: FakeProvider) -> None:
    status, raw = await post(provider.url + "/chat/completions", chat("abcdefgh", n=3, max_tokens=10))
    assert status == 200
    out = orjson.loads(raw)
    assert [len(c["message"]["content"].encode()) for c in out["choices"]] == [40, 40, 40]
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"]["completion_tokens"] == 30
    assert out["usage"]["prompt_tokens"] == PER_MESSAGE_TOKENS + 2


async def test_chat_without_a_limit_writes_16k_tokens(provider: FakeProvider) -> None:
    _, raw = await post(provider.url + "/chat/completions", chat())
    assert len(orjson.loads(raw)["choices"][0]["message"]["content"]) == 16_384 * 4


async def test_chat_stream_usage_only_when_asked(provider: FakeProvider) -> None:
    body = chat(n=2, max_tokens=40, stream=True)
    _, raw = await post(provider.url + "/chat/completions", body)
    evs = events(raw)
    assert not any(e.get("usage") for e in evs)
    got = sum(len((c["delta"].get("content") or "").encode()) for e in evs for c in e["choices"])
    assert got == 2 * 40 * 4
    _, raw = await post(
        provider.url + "/chat/completions", {**body, "stream_options": {"include_usage": True}}
    )
    last = events(raw)[-1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 80


async def test_chat_tool_call_streams_arguments_and_counts_tools(provider: FakeProvider) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = chat("[stop:7]", tools=tools, stream=True, stream_options={"include_usage": True})
    _, raw = await post(provider.url + "/chat/completions", body)
    evs = events(raw)
    args = "".join(
        tc["function"].get("arguments") or ""
        for e in evs
        for c in e["choices"]
        for tc in c["delta"].get("tool_calls") or ()
    )
    assert args == arguments(7) and len(args) == 28 and orjson.loads(args)
    usage = evs[-1]["usage"]
    assert usage["completion_tokens"] == 7
    assert usage["prompt_tokens"] == PER_MESSAGE_TOKENS + tokens_of("[stop:7]") + tokens_of(
        orjson.dumps(tools).decode()
    )


async def test_images_cost_1105_tokens_each(provider: FakeProvider) -> None:
    parts = [{"type": "image_url", "image_url": {"url": f"https://x/{i}.png"}} for i in range(3)]
    _, raw = await post(provider.url + "/chat/completions", chat(parts, max_tokens=1))
    assert orjson.loads(raw)["usage"]["prompt_tokens"] == PER_MESSAGE_TOKENS + 3 * IMAGE_TOKENS


async def test_completions_prompt_list_and_best_of(provider: FakeProvider) -> None:
    body = {"model": "m", "prompt": ["a", "b", "c"], "best_of": 2, "max_tokens": 5}
    _, raw = await post(provider.url + "/completions", body)
    out = orjson.loads(raw)
    assert len(out["choices"]) == 3 and all(len(c["text"]) == 20 for c in out["choices"])
    assert out["usage"]["completion_tokens"] == 3 * 2 * 5 and out["usage"]["prompt_tokens"] == 3
    status, _ = await post(provider.url + "/completions", {**body, "stream": True})
    assert status == 400  # best_of results cannot be streamed


async def test_responses_function_call_stream_and_extras(provider: FakeProvider) -> None:
    tools = [{"type": "function", "name": "f", "parameters": {}}]
    body = {"model": "m", "input": "x", "tools": tools, "max_output_tokens": 9, "stream": True}
    _, raw = await post(provider.url + "/responses", body)
    evs = events(raw)
    args = "".join(e["delta"] for e in evs if e["type"] == "response.function_call_arguments.delta")
    assert args == arguments(9)
    final = evs[-1]
    assert final["type"] == "response.incomplete" and final["response"]["usage"]["output_tokens"] == 9
    _, raw = await post(provider.url + "/responses", {"model": "m", "input": "x", "background": True})
    queued = orjson.loads(raw)
    assert queued["status"] == "queued" and queued["usage"] is None
    body = {"model": "m", "input": "x", "previous_response_id": "resp_1", "max_output_tokens": 1}
    _, raw = await post(provider.url + "/responses", {**body, "tools": [{"type": "web_search"}]})
    out = orjson.loads(raw)
    assert out["usage"]["input_tokens"] > STORED_CONTEXT_TOKENS
    assert out["output"][0]["type"] == "web_search_call" and out["fake_surcharges"]["web_search_calls"] == 1
    _, raw = await post(provider.url + "/responses", {**body, "service_tier": "priority"})
    assert orjson.loads(raw)["service_tier"] == "priority"


async def test_anthropic_stream_reports_output_only_at_the_end(provider: FakeProvider) -> None:
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    body = {**chat(), "max_tokens": 12, "stream": True, "tools": tools, "system": "be brief"}
    _, raw = await post(provider.url + "/messages", body, ANTHROPIC)
    evs = events(raw)
    start = evs[0]["message"]["usage"]
    assert start["output_tokens"] == 1
    assert start["input_tokens"] == (
        tokens_of("be brief") + PER_MESSAGE_TOKENS + 1 + tokens_of(orjson.dumps(tools).decode())
    )
    partial = "".join(e["delta"]["partial_json"] for e in evs if e["type"] == "content_block_delta")
    assert partial == arguments(12)
    delta = next(e for e in evs if e["type"] == "message_delta")
    assert delta["usage"]["output_tokens"] == 12 and evs[-1]["type"] == "message_stop"


async def test_anthropic_web_search_is_run_and_billed(provider: FakeProvider) -> None:
    body = {**chat(), "max_tokens": 2, "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    _, raw = await post(provider.url + "/messages", body, ANTHROPIC)
    out = orjson.loads(raw)
    assert [b["type"] for b in out["content"]] == ["server_tool_use", "web_search_tool_result", "text"]
    assert out["usage"]["server_tool_use"]["web_search_requests"] == 1


async def test_cut_closes_the_stream_without_usage(provider: FakeProvider) -> None:
    body = chat("[cut:32]", max_tokens=100, stream=True, stream_options={"include_usage": True})
    got = b""
    async with aiohttp.ClientSession() as s:
        async with s.post(
            provider.url + "/chat/completions", json=body, headers={"Authorization": "Bearer k"}
        ) as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                async for chunk in r.content.iter_any():
                    got += chunk
    evs = events(got[: got.rfind(b"\n\n") + 2])
    text = "".join(c["delta"].get("content") or "" for e in evs for c in e["choices"])
    assert len(text) == 32 * 4 and not any(e.get("usage") for e in evs)
    with pytest.raises(aiohttp.ClientError):  # not streamed: no answer at all
        await post(provider.url + "/chat/completions", chat("[cut:1]"))


async def test_slow_stream_takes_its_time(provider: FakeProvider) -> None:
    started = time.monotonic()
    _, raw = await post(provider.url + "/chat/completions", chat("[slow:0.1]", max_tokens=48, stream=True))
    assert time.monotonic() - started >= 0.3  # 3 events of 16 tokens
    assert len(events(raw)) == 5
