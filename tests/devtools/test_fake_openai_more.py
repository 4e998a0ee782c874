"""Legacy completions, embeddings and the Responses API, checked with the official ``openai`` SDK."""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai import AsyncOpenAI

from routstr.devtools.fake_llm_openai import (
    EMBEDDING_DIMENSIONS,
    completion_replies,
    embedding_vector,
    expected_completion_usage,
    expected_embedding_usage,
    expected_responses_usage,
    responses_reply,
)
from routstr.devtools.fake_upstream import expected_usage

from .conftest import Upstream

LONG = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"


def client(up: Upstream) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=up.url, api_key="sk-test", max_retries=0)


async def post(up: Upstream, path: str, body: Any) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s, s.post(f"{up.url}{path}", json=body) as r:
        return r.status, dict(r.headers), await r.read()


def sse(raw: bytes) -> list[tuple[str | None, bytes]]:
    """(event name or None, data) of each SSE event."""
    out = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        name, data = None, b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        out.append((name, data))
    return out


# -- the token rules -----------------------------------------------------------------------------


def test_completion_rule() -> None:
    body: dict[str, Any] = {"model": "m", "prompt": ["abcd", "abcdefgh"], "max_tokens": 100}
    assert [t for t, _ in completion_replies(body)] == ["Echo: abcd", "Echo: abcdefgh"]
    assert expected_completion_usage(body) == {
        "prompt_tokens": 1 + 2,
        "completion_tokens": 3 + 4,
        "total_tokens": 10,
    }
    # OpenAI's legacy default: 16 tokens, i.e. 64 bytes of reply
    ((text, finish),) = completion_replies({"prompt": LONG * 2})
    assert (len(text.encode()), finish) == (64, "length")
    assert expected_completion_usage({"prompt": [1, 2, 3]})["prompt_tokens"] == 3  # token ids count one each


def test_embedding_rule() -> None:
    assert expected_embedding_usage({"input": ["abcde", "x"]}) == {"prompt_tokens": 2 + 1, "total_tokens": 3}
    v = embedding_vector("hello")
    assert len(v) == EMBEDDING_DIMENSIONS and v == embedding_vector("hello") != embedding_vector("hellp")
    assert sum(x * x for x in v) == pytest.approx(1.0, abs=1e-5)
    assert len(embedding_vector("hello", 100)) == 100


def test_responses_rule() -> None:
    body: dict[str, Any] = {"input": "abcd", "instructions": "abcdefgh"}
    # chat rule: 3 priming + (3 + 2) for the instructions as a system message + (3 + 1) for the input
    assert expected_responses_usage(body)["input_tokens"] == 3 + 5 + 4
    as_items = {
        "instructions": "abcdefgh",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "abcd"}]}],
    }
    assert expected_responses_usage(as_items) == expected_responses_usage(body)
    assert (
        expected_responses_usage(body)["input_tokens"]
        == expected_usage(
            {"messages": [{"role": "system", "content": "abcdefgh"}, {"role": "user", "content": "abcd"}]}
        )["prompt_tokens"]
    )
    assert responses_reply({"input": LONG, "max_output_tokens": 16}) == (("Echo: " + LONG)[:64], True)


# -- /v1/completions -----------------------------------------------------------------------------


async def test_completions_non_stream(upstream: Upstream) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello", "max_tokens": 50}
    resp = await client(upstream).completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say hello", max_tokens=50
    )
    assert resp.object == "text_completion" and resp.choices[0].text == "Echo: Say hello"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.model_dump(exclude_none=True) == expected_completion_usage(
        body
    )
    assert upstream.state.by_path == {"/v1/completions": 1} and upstream.state.last_body == body


async def test_completions_list_and_default_max_tokens(upstream: Upstream) -> None:
    resp = await client(upstream).completions.create(model="gpt-4o-mini", prompt=["a", LONG])
    assert [c.text for c in resp.choices] == ["Echo: a", ("Echo: " + LONG)[:64]]
    assert [c.finish_reason for c in resp.choices] == ["stop", "length"]
    assert resp.usage is not None and resp.usage.completion_tokens == 2 + 16


async def test_completions_stream_with_usage(upstream: Upstream) -> None:
    body: dict[str, Any] = {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": ["Hello there friend", "b"],
        "max_tokens": 40,
    }
    stream = await client(upstream).completions.create(
        **body, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    texts = [
        "".join(c.choices[0].text for c in chunks if c.choices and c.choices[0].index == i) for i in (0, 1)
    ]
    assert texts == [t for t, _ in completion_replies(body)]
    assert len(chunks) >= 5 and chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(exclude_none=True) == expected_completion_usage(body)
    assert all(c.usage is None for c in chunks[:-1])


async def test_completions_stream_without_usage(upstream: Upstream) -> None:
    status, _, raw = await post(upstream, "/completions", {"model": "gpt-4o", "prompt": "x", "stream": True})
    events = [d for _, d in sse(raw)]
    assert status == 200 and events[-1] == b"[DONE]" and all(b"usage" not in e for e in events)
    assert orjson.loads(events[-2])["choices"][0]["finish_reason"] == "stop"


# -- /v1/embeddings ------------------------------------------------------------------------------


async def test_embeddings_sdk_default_base64(upstream: Upstream) -> None:
    resp = await client(upstream).embeddings.create(model="text-embedding-3-small", input=["hello", "world!"])
    assert upstream.state.last_body["encoding_format"] == "base64"  # what the SDK asks for by default
    assert [d.embedding for d in resp.data] == [embedding_vector("hello"), embedding_vector("world!")]
    assert [d.index for d in resp.data] == [0, 1] and resp.model == "text-embedding-3-small"
    body = {"input": ["hello", "world!"]}
    assert (
        resp.usage.model_dump() == expected_embedding_usage(body) == {"prompt_tokens": 4, "total_tokens": 4}
    )


async def test_embeddings_float_and_dimensions(upstream: Upstream) -> None:
    c = client(upstream)
    resp = await c.embeddings.create(model="text-embedding-3-small", input="hi", encoding_format="float")
    assert resp.data[0].embedding == embedding_vector("hi") and resp.object == "list"
    resp = await c.embeddings.create(
        model="text-embedding-3-small", input="hi", dimensions=32, encoding_format="float"
    )
    assert len(resp.data[0].embedding) == 32
    status, _, raw = await post(
        upstream,
        "/embeddings",
        {"model": "text-embedding-3-small", "input": "hi", "encoding_format": "base64"},
    )
    b64 = orjson.loads(raw)["data"][0]["embedding"]
    assert status == 200 and isinstance(b64, str)
    assert list(struct.unpack("<8f", base64.b64decode(b64))) == embedding_vector("hi")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "text-embedding-3-small"}, 400),
        ({"model": "text-embedding-3-small", "input": ""}, 400),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, 400),
        ({"model": "nope", "input": "x"}, 404),
    ],
)
async def test_embeddings_validation(upstream: Upstream, body: Any, status: int) -> None:
    got, _, raw = await post(upstream, "/embeddings", body)
    assert got == status and orjson.loads(raw)["error"]["message"]


# -- /v1/responses -------------------------------------------------------------------------------


async def test_responses_non_stream(upstream: Upstream) -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "input": "Hello there", "instructions": "Be nice"}
    resp = await client(upstream).responses.create(**body)
    assert resp.id.startswith("resp_") and resp.object == "response" and resp.status == "completed"
    assert resp.output_text == "Echo: Hello there" and resp.output[0].type == "message"
    assert resp.usage is not None and resp.usage.model_dump(exclude_none=True) == expected_responses_usage(
        body
    )
    assert resp.usage.input_tokens_details.cached_tokens == 0
    assert resp.usage.output_tokens_details.reasoning_tokens == 0


async def test_responses_items_input(upstream: Upstream) -> None:
    items: Any = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "input_text", "text": "second question"}]},
    ]
    resp = await client(upstream).responses.create(model="gpt-4o-mini", input=items)
    assert resp.output_text == "Echo: second question"
    assert (
        resp.usage is not None
        and resp.usage.input_tokens == expected_responses_usage({"input": items})["input_tokens"]
    )


async def test_responses_stream(upstream: Upstream) -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "input": "Hello there, how are you doing today?"}
    stream = await client(upstream).responses.create(**body, stream=True)
    events = [e async for e in stream]
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") >= 3
    assert "response.output_text.done" in kinds
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Echo: Hello there, how are you doing today?"
    final = events[-1]
    assert final.type == "response.completed" and final.response.output_text == text
    assert final.response.usage is not None
    assert final.response.usage.model_dump(exclude_none=True) == expected_responses_usage(body)
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_responses_stream_helper_and_raw_events(upstream: Upstream) -> None:
    async with client(upstream).responses.stream(model="gpt-4o", input="Hi you") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "Echo: Hi you" and final.usage is not None
    status, headers, raw = await post(
        upstream, "/responses", {"model": "gpt-4o", "input": "x", "stream": True}
    )
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = sse(raw)
    assert all(name == orjson.loads(data)["type"] for name, data in events)  # "event:" names the data's type
    assert b"[DONE]" not in raw


async def test_responses_truncated_is_incomplete(upstream: Upstream) -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "input": LONG, "max_output_tokens": 16}
    resp = await client(upstream).responses.create(**body)
    assert resp.status == "incomplete" and resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens" and resp.usage is not None
    assert resp.usage.output_tokens == 16 == expected_responses_usage(body)["output_tokens"]
    events = [e async for e in await client(upstream).responses.create(**body, stream=True)]
    assert events[-1].type == "response.incomplete" and events[-1].response.usage is not None
    with pytest.raises(openai.BadRequestError) as e:
        await client(upstream).responses.create(model="gpt-4o", input="x", max_output_tokens=15)
    assert e.value.code == "integer_below_min_value"


# -- failure models on every new route -----------------------------------------------------------

ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/completions", {"prompt": "hello"}),
    ("/embeddings", {"input": "hello"}),
    ("/responses", {"input": "hello"}),
    ("/images/generations", {"prompt": "a cat"}),
]


@pytest.mark.parametrize(("path", "extra"), ROUTES)
async def test_failure_models(upstream: Upstream, path: str, extra: dict[str, Any]) -> None:
    for model, status in (("fail-500", 500), ("fail-429", 429), ("fail-400", 400)):
        got, headers, raw = await post(upstream, path, {"model": model, **extra})
        assert got == status and orjson.loads(raw)["error"]["type"]
        assert status != 429 or headers["Retry-After"] == "1"
    got, _, _ = await post(upstream, path, {"model": "fail-timeout", "fake_delay_ms": 20, **extra})
    assert got == 504
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(upstream, path, {"model": "fail-connection-drop", **extra})
    t0 = time.monotonic()
    got, _, _ = await post(upstream, path, {"model": "gpt-4o", "fake_delay_ms": 150, **extra})
    assert got == 200 and time.monotonic() - t0 >= 0.14


async def test_no_usage_and_cut_stream(upstream: Upstream) -> None:
    for path, extra in ROUTES[:3]:
        got, _, raw = await post(upstream, path, {"model": "no-usage", **extra})
        assert got == 200 and orjson.loads(raw).get("usage") is None
    body = {"model": "cut-stream", "input": LONG, "stream": True}
    got_events: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with aiohttp.ClientSession() as s, s.post(f"{upstream.url}/responses", json=body) as r:
            async for line in r.content:
                if line.startswith(b"event: "):
                    got_events.append(line[7:].strip())
    assert (
        got_events[-1] == b"response.output_text.delta"
        and got_events.count(b"response.output_text.delta") == 2
    )


async def test_slow_stream_responses(upstream: Upstream) -> None:
    body = {
        "model": "slow-stream",
        "input": "Hello there, how are you doing today?",
        "stream": True,
        "fake_delay_ms": 30,
    }
    arrivals: list[float] = []
    async with aiohttp.ClientSession() as s, s.post(f"{upstream.url}/responses", json=body) as r:
        async for line in r.content:
            if line.startswith(b"event: "):
                arrivals.append(time.monotonic())
    assert len(arrivals) >= 10 and arrivals[-1] - arrivals[0] >= 0.03 * (len(arrivals) - 1) * 0.9
