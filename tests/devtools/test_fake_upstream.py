"""The fake upstream speaks OpenAI well enough for the official SDK, and fails exactly as documented."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from openai import AsyncOpenAI

from routstr.devtools.fake_llm import (
    DEFAULT_MODELS,
    FAILURE_MODELS,
    count_tokens,
    expected_usage,
    prompt_tokens,
    reply_for,
    stream_pieces,
)
from routstr.devtools.fake_upstream import STATE, build_app, start_fake_upstream
from routstr.devtools.nutshell import free_port

from .conftest import Upstream

MESSAGES: Any = [  # Any: the SDK wants its TypedDicts
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello there, how are you doing today?"},
]


def client(up: Upstream, **kw: Any) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=up.url, api_key="sk-test", max_retries=0, **kw)


async def post(up: Upstream, body: Any, raw: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s:
        data = raw if raw is not None else orjson.dumps(body)
        async with s.post(f"{up.url}/chat/completions", data=data) as r:
            return r.status, dict(r.headers), await r.read()


async def sse_events(up: Upstream, body: dict[str, Any]) -> list[bytes]:
    """The raw ``data:`` payloads of a streamed answer."""
    async with aiohttp.ClientSession() as s, s.post(f"{up.url}/chat/completions", json=body) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        raw = await r.read()
    return [e.removeprefix(b"data: ") for e in raw.split(b"\n\n") if e]


# -- the documented token rule -------------------------------------------------------------------


def test_count_tokens_rule() -> None:
    assert [count_tokens(t) for t in ("", "a", "abcd", "abcde", "é", "😀😀")] == [0, 1, 1, 2, 1, 2]


def test_prompt_tokens_rule() -> None:
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": "abcdefgh", "name": "bob"},  # 3 + 2 + (1 + 1)
        {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url"}]},  # 3+1+85
    ]
    assert prompt_tokens(msgs) == 3 + (3 + 2 + 2) + (3 + 1 + 85)


def test_reply_truncated_to_max_tokens() -> None:
    text, finish = reply_for({"messages": MESSAGES, "max_tokens": 2})
    assert (text, finish) == ("Echo: He", "length")
    text, finish = reply_for({"messages": MESSAGES, "max_completion_tokens": 1000, "max_tokens": 1})
    assert (text, finish) == ("Echo: Hello there, how are you doing today?", "stop")
    assert "".join(stream_pieces(text)) == text


# -- happy path with the official SDK -------------------------------------------------------------


async def test_models_list(upstream: Upstream) -> None:
    models = {m.id: m for m in (await client(upstream).models.list()).data}
    assert {"gpt-4o-mini", "gpt-4o", "llama-3.1-8b", *FAILURE_MODELS} <= models.keys()
    assert (models["gpt-4o-mini"].model_extra or {})["context_length"] == 128000
    one = await client(upstream).models.retrieve("gpt-4o")
    assert one.id == "gpt-4o" and one.object == "model"


async def test_failure_models_can_be_hidden() -> None:
    runner, url = await start_fake_upstream(include_failure_models=False)
    try:
        ids = [m.id for m in (await client(Upstream(url, runner.app[STATE])).models.list()).data]
        assert ids == [m.id for m in DEFAULT_MODELS] and ids[:3] == ["gpt-4o-mini", "gpt-4o", "llama-3.1-8b"]
    finally:
        await runner.cleanup()


async def test_chat_non_stream(upstream: Upstream) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    resp = await client(upstream).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert resp.choices[0].message.content == "Echo: Hello there, how are you doing today?"
    assert resp.choices[0].finish_reason == "stop" and resp.object == "chat.completion"
    assert resp.usage is not None
    assert resp.usage.model_dump(exclude_none=True) == expected_usage(body)
    assert resp.usage.prompt_tokens == 3 + (3 + 4) + (3 + 10)
    assert resp.usage.prompt_tokens_details and resp.usage.prompt_tokens_details.cached_tokens == 0
    assert upstream.state.by_model == {"gpt-4o-mini": 1}
    assert upstream.state.last_authorization == "Bearer sk-test"


async def test_chat_max_tokens(upstream: Upstream) -> None:
    resp = await client(upstream).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_completion_tokens=3
    )
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None and resp.usage.completion_tokens == 3
    assert resp.choices[0].message.content == "Echo: Hello "


async def test_stream_with_usage(upstream: Upstream) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    stream = await client(upstream).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply_for(body)[0]
    assert len(chunks) >= 5  # role, several content deltas, finish, usage
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(exclude_none=True) == expected_usage(body)
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_usage(upstream: Upstream) -> None:
    events = await sse_events(upstream, {"model": "gpt-4o", "messages": MESSAGES, "stream": True})
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"messages": MESSAGES}, 400, None, None),
        ({"model": "gpt-4o"}, 400, "messages", "missing_required_parameter"),
        ({"model": "gpt-4o", "messages": []}, 400, "messages", "empty_array"),
        ({"model": "gpt-4o", "messages": [{"content": "x"}]}, 400, "messages[0].role", "invalid_value"),
        (
            {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 0},
            400,
            "max_tokens",
            "integer_below_min_value",
        ),
        ({"model": "gpt-5-nope", "messages": MESSAGES}, 404, None, "model_not_found"),
    ],
)
async def test_validation(
    upstream: Upstream, body: Any, status: int, param: str | None, code: str | None
) -> None:
    got, _, raw = await post(upstream, body)
    err = orjson.loads(raw)["error"]
    assert (got, err["type"], err["param"], err["code"]) == (status, "invalid_request_error", param, code)
    assert err["message"]


async def test_invalid_json(upstream: Upstream) -> None:
    status, _, raw = await post(upstream, None, raw=b"{not json")
    assert status == 400 and orjson.loads(raw)["error"]["type"] == "invalid_request_error"


async def test_unknown_model_with_sdk(upstream: Upstream) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        await client(upstream).chat.completions.create(model="nope", messages=MESSAGES)
    assert e.value.code == "model_not_found"


# -- failure modes -------------------------------------------------------------------------------


async def test_fail_500_429_400(upstream: Upstream) -> None:
    c = client(upstream)
    with pytest.raises(openai.InternalServerError):
        await c.chat.completions.create(model="fail-500", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as rl:
        await c.chat.completions.create(model="fail-429", messages=MESSAGES)
    assert rl.value.response.headers["retry-after"] == "1" and rl.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.BadRequestError) as br:
        await c.chat.completions.create(model="fail-400", messages=MESSAGES)
    assert br.value.code == "context_length_exceeded"
    assert upstream.state.by_model == {"fail-500": 1, "fail-429": 1, "fail-400": 1}


async def test_fake_behavior_field(upstream: Upstream) -> None:
    status, _, raw = await post(
        upstream, {"model": "gpt-4o", "messages": MESSAGES, "fake_behavior": "fail-500"}
    )
    assert status == 500 and orjson.loads(raw)["error"]["type"] == "server_error"


async def test_fail_timeout_client_gives_up(upstream: Upstream) -> None:
    t0 = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client(upstream, timeout=0.3).chat.completions.create(model="fail-timeout", messages=MESSAGES)
    assert time.monotonic() - t0 < 2


async def test_fail_timeout_ends_with_504(upstream: Upstream) -> None:
    status, _, raw = await post(
        upstream, {"model": "fail-timeout", "messages": MESSAGES, "fake_delay_ms": 50}
    )
    assert status == 504 and orjson.loads(raw)["error"]["code"] == "timeout"


async def test_connection_drop(upstream: Upstream) -> None:
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(upstream, {"model": "fail-connection-drop", "messages": MESSAGES})
    with pytest.raises(openai.APIConnectionError):
        await client(upstream).chat.completions.create(model="fail-connection-drop", messages=MESSAGES)


async def test_slow_stream(upstream: Upstream) -> None:
    body = {"model": "slow-stream", "messages": MESSAGES, "stream": True, "fake_delay_ms": 40}
    arrivals: list[float] = []
    async with aiohttp.ClientSession() as s, s.post(f"{upstream.url}/chat/completions", json=body) as r:
        async for line in r.content:
            if line.startswith(b"data: "):
                arrivals.append(time.monotonic())
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] >= 0.04 * (len(arrivals) - 1) * 0.9


async def test_cut_stream(upstream: Upstream) -> None:
    body = {
        "model": "cut-stream",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    got: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with aiohttp.ClientSession() as s, s.post(f"{upstream.url}/chat/completions", json=body) as r:
            async for line in r.content:
                if line.startswith(b"data: "):
                    got.append(line[6:].strip())
    assert 1 < len(got) <= 3 and b"[DONE]" not in got
    chunks = [orjson.loads(g) for g in got]
    assert all(c["usage"] is None and c["choices"][0]["finish_reason"] is None for c in chunks)


async def test_no_usage(upstream: Upstream) -> None:
    status, _, raw = await post(upstream, {"model": "no-usage", "messages": MESSAGES})
    assert status == 200 and "usage" not in orjson.loads(raw)
    body = {
        "model": "no-usage",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    events = await sse_events(upstream, body)
    assert events[-1] == b"[DONE]" and all(b'"usage":{' not in e for e in events)


# -- auth, stats, odds and ends ------------------------------------------------------------------


async def test_expected_api_key() -> None:
    runner, url = await start_fake_upstream(app=build_app(expected_api_key="sk-upstream"))
    up = Upstream(url, runner.app[STATE])
    try:
        ok = await AsyncOpenAI(base_url=url, api_key="sk-upstream", max_retries=0).models.list()
        assert ok.data
        with pytest.raises(openai.AuthenticationError) as e:
            await client(up).chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert e.value.code == "invalid_api_key"
        assert up.state.authorizations == {"Bearer sk-upstream": 1, "Bearer sk-test": 1}
        assert up.state.unauthorized == 1 and up.state.by_model == {}
    finally:
        await runner.cleanup()


async def test_stats_health_and_reset(upstream: Upstream) -> None:
    await post(upstream, {"model": "gpt-4o", "messages": MESSAGES})
    root = upstream.url.removesuffix("/v1")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{root}/health") as r:
            assert r.status == 200
        async with s.get(f"{root}/_fake/stats") as r:
            stats = await r.json()
        assert stats["requests_total"] == 1 and stats["by_model"] == {"gpt-4o": 1}
        assert stats["last_body"]["messages"] == MESSAGES
        async with s.post(f"{root}/_fake/reset") as r:
            assert r.status == 200
        async with s.get(f"{upstream.url}/nope") as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_url"
    assert upstream.state.requests_total == 1  # only the unknown URL since the reset


async def test_concurrent_requests(upstream: Upstream) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES})
    async with aiohttp.ClientSession() as s:

        async def one() -> int:
            async with s.post(f"{upstream.url}/chat/completions", data=body) as r:
                await r.read()
                return r.status

        t0 = time.perf_counter()
        statuses = await asyncio.gather(*[one() for _ in range(500)])
        elapsed = time.perf_counter() - t0
    assert statuses == [200] * 500
    rate = 500 / elapsed
    print(
        f"\nfake upstream: 500 chat completions in {elapsed:.2f}s ({rate:.0f} req/s, client in the same loop)"
    )


def test_cli_serves() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "routstr.devtools.fake_upstream",
            "--port",
            str(port),
            "--hide-failure-models",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        assert b"fake upstream on" in proc.stdout.readline()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{port}/v1/models", timeout=5) as r:
            listing = r.read().decode()
        assert '"gpt-4o-mini"' in listing and "fail-500" not in listing
    finally:
        proc.terminate()
        proc.wait(timeout=5)
