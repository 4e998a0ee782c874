"""Anthropic's Messages API on the fake upstream, checked with the official ``anthropic`` SDK."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
import pytest

from routstr.devtools.fake_anthropic import anthropic_input_tokens, anthropic_reply, expected_anthropic_usage
from routstr.devtools.fake_upstream import STATE, build_app, start_fake_upstream

from .conftest import Upstream

anthropic = pytest.importorskip("anthropic")

MODEL = "claude-haiku-4-5"
MESSAGES: Any = [{"role": "user", "content": "Hello Claude, how are you doing today?"}]
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-test"}


def client(up: Upstream, key: str = "sk-ant-test") -> Any:
    # the SDK appends /v1/messages to the base URL, so it gets the server root
    return anthropic.AsyncAnthropic(base_url=up.url.removesuffix("/v1"), api_key=key, max_retries=0)


async def post(
    up: Upstream, body: Any, path: str = "/messages", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{up.url}{path}", json=body, headers=HEADERS if headers is None else headers) as r:
            return r.status, dict(r.headers), await r.read()


def events_of(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n", 1)
            out.append((name.removeprefix(b"event: ").decode(), orjson.loads(data.removeprefix(b"data: "))))
    return out


# -- the token rule ------------------------------------------------------------------------------


def test_anthropic_token_rule() -> None:
    body: dict[str, Any] = {
        "system": [{"type": "text", "text": "abcdefgh"}],  # 2
        "messages": [
            {"role": "user", "content": "abcd"},  # 3 + 1
            {"role": "assistant", "content": [{"type": "text", "text": "abcde"}]},  # 3 + 2
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image"}]},  # 3 + 1 + 85
        ],
        "max_tokens": 2,
        "fake_cache_read_tokens": 30,
        "fake_cache_write_tokens": 7,
    }
    assert anthropic_input_tokens(body) == 2 + 4 + 5 + 89
    assert anthropic_reply(body) == ("Echo: a", "end_turn")  # "Echo: a" is 7 bytes: 2 tokens, not cut
    assert expected_anthropic_usage(body) == {
        "input_tokens": 100,
        "cache_creation_input_tokens": 7,
        "cache_read_input_tokens": 30,
        "output_tokens": 2,
    }
    assert anthropic_reply({**body, "max_tokens": 1}) == ("Echo", "max_tokens")


# -- with the SDK --------------------------------------------------------------------------------


async def test_create(upstream: Upstream) -> None:
    body = {"model": MODEL, "max_tokens": 100, "system": "Be terse.", "messages": MESSAGES}
    msg = await client(upstream).messages.create(**body)
    assert msg.id.startswith("msg_") and msg.type == "message" and msg.role == "assistant"
    assert (
        msg.content[0].type == "text"
        and msg.content[0].text == "Echo: Hello Claude, how are you doing today?"
    )
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None and msg.model == MODEL
    assert msg.usage.model_dump(exclude_none=True) == expected_anthropic_usage(body)
    assert msg.usage.input_tokens == 3 + (3 + 10)
    assert upstream.state.by_path == {"/v1/messages": 1}
    assert upstream.state.authorizations == {
        "Bearer sk-ant-test": 1
    }  # anthropic SDK 2.x: Bearer, no x-api-key
    assert upstream.state.last_headers["anthropic-version"]  # the SDK's own API version
    assert upstream.state.last_body == body


async def test_create_max_tokens_and_cache_fields(upstream: Upstream) -> None:
    extra = {"fake_cache_read_tokens": 1000, "fake_cache_write_tokens": 50}
    msg = await client(upstream).messages.create(
        model=MODEL, max_tokens=3, messages=MESSAGES, extra_body=extra
    )
    assert msg.stop_reason == "max_tokens" and msg.content[0].text == "Echo: Hello "
    assert msg.usage.output_tokens == 3
    assert (msg.usage.cache_read_input_tokens, msg.usage.cache_creation_input_tokens) == (1000, 50)


async def test_stream(upstream: Upstream) -> None:
    body = {"model": MODEL, "max_tokens": 100, "messages": MESSAGES, "fake_cache_read_tokens": 9}
    async with client(upstream).messages.stream(
        model=MODEL, max_tokens=100, messages=MESSAGES, extra_body={"fake_cache_read_tokens": 9}
    ) as stream:
        pieces = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) >= 3 and "".join(pieces) == "Echo: Hello Claude, how are you doing today?"
    assert final.content[0].text == "".join(pieces) and final.stop_reason == "end_turn"
    assert final.usage.model_dump(exclude_none=True) == expected_anthropic_usage(body)


async def test_stream_raw_events(upstream: Upstream) -> None:
    body = {"model": MODEL, "max_tokens": 100, "messages": MESSAGES, "stream": True}
    status, headers, raw = await post(upstream, body)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = events_of(raw)
    names = [n for n, _ in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert names.count("content_block_delta") >= 3 and all(n == d["type"] for n, d in events)
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] == 13 and start["usage"]["output_tokens"] == 1
    delta = events[-2][1]
    assert delta["usage"] == {"output_tokens": expected_anthropic_usage(body)["output_tokens"]}
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


async def test_count_tokens(upstream: Upstream) -> None:
    got = await client(upstream).messages.count_tokens(model=MODEL, system="abcd", messages=MESSAGES)
    assert got.input_tokens == 1 + 3 + 10 == anthropic_input_tokens({"system": "abcd", "messages": MESSAGES})
    assert upstream.state.by_path == {"/v1/messages/count_tokens": 1}


# -- checks and failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "kind", "words"),
    [
        ({"model": MODEL, "messages": MESSAGES}, 400, "invalid_request_error", "max_tokens: Field required"),
        ({"model": MODEL, "max_tokens": 5}, 400, "invalid_request_error", "messages: Field required"),
        ({"max_tokens": 5, "messages": MESSAGES}, 400, "invalid_request_error", "model: Field required"),
        (
            {"model": MODEL, "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            400,
            "invalid_request_error",
            "messages.0.role",
        ),
        (
            {"model": "claude-nope", "max_tokens": 5, "messages": MESSAGES},
            404,
            "not_found_error",
            "claude-nope",
        ),
    ],
)
async def test_validation(upstream: Upstream, body: Any, status: int, kind: str, words: str) -> None:
    got, _, raw = await post(upstream, body)
    err = orjson.loads(raw)
    assert (got, err["type"], err["error"]["type"]) == (status, "error", kind) and words in err["error"][
        "message"
    ]


async def test_version_header_required(upstream: Upstream) -> None:
    body = {"model": MODEL, "max_tokens": 5, "messages": MESSAGES}
    got, _, raw = await post(upstream, body, headers={"x-api-key": "k"})
    err = orjson.loads(raw)["error"]
    assert got == 400 and err["type"] == "invalid_request_error" and "anthropic-version" in err["message"]


async def test_api_key_checked() -> None:
    runner, url = await start_fake_upstream(app=build_app(expected_api_key="sk-ant-upstream"))
    up = Upstream(url, runner.app[STATE])
    body = {"model": MODEL, "max_tokens": 5, "messages": MESSAGES}
    try:
        ok = await client(up, "sk-ant-upstream").messages.create(**body)  # sent as Authorization: Bearer
        assert ok.content
        with pytest.raises(anthropic.AuthenticationError) as e:
            await client(up, "wrong").messages.create(**body)
        assert e.value.status_code == 401 and e.value.body["error"]["type"] == "authentication_error"
        for key, status in (("sk-ant-upstream", 200), ("nope", 401)):
            got, _, raw = await post(up, body, headers={**HEADERS, "x-api-key": key})
            assert got == status, raw
        assert up.state.unauthorized == 2 and up.state.x_api_keys == {"sk-ant-upstream": 1, "nope": 1}
        assert up.state.authorizations == {"Bearer sk-ant-upstream": 1, "Bearer wrong": 1}
    finally:
        await runner.cleanup()


async def test_failure_models(upstream: Upstream) -> None:
    c = client(upstream)
    with pytest.raises(anthropic.InternalServerError) as ise:
        await c.messages.create(model="fail-500", max_tokens=5, messages=MESSAGES)
    assert ise.value.status_code == 500 and ise.value.body["error"]["type"] == "api_error"
    with pytest.raises(anthropic.RateLimitError) as rl:
        await c.messages.create(model="fail-429", max_tokens=5, messages=MESSAGES)
    assert (
        rl.value.response.headers["retry-after"] == "1"
        and rl.value.body["error"]["type"] == "rate_limit_error"
    )
    with pytest.raises(anthropic.BadRequestError) as br:
        await c.messages.create(
            model=MODEL, max_tokens=5, messages=MESSAGES, extra_body={"fake_behavior": "fail-400"}
        )
    assert "prompt is too long" in br.value.body["error"]["message"]
    got, _, raw = await post(
        upstream, {"model": "fail-timeout", "max_tokens": 5, "messages": MESSAGES, "fake_delay_ms": 20}
    )
    assert got == 504 and orjson.loads(raw)["error"]["type"] == "timeout_error"
    with pytest.raises(anthropic.APIConnectionError):
        await c.messages.create(model="fail-connection-drop", max_tokens=5, messages=MESSAGES)


async def test_no_usage_cut_and_slow(upstream: Upstream) -> None:
    base = {"max_tokens": 100, "messages": MESSAGES}
    got, _, raw = await post(upstream, {"model": "no-usage", **base})
    assert got == 200 and "usage" not in orjson.loads(raw)
    got, _, raw = await post(upstream, {"model": "no-usage", "stream": True, **base})
    assert got == 200 and all(b'"usage"' not in line for line in raw.splitlines())
    names: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with aiohttp.ClientSession() as s:
            body = {"model": "cut-stream", "stream": True, **base}
            async with s.post(f"{upstream.url}/messages", json=body, headers=HEADERS) as r:
                async for line in r.content:
                    if line.startswith(b"event: "):
                        names.append(line[7:].strip())
    assert names[-1] == b"content_block_delta" and names.count(b"content_block_delta") == 2
    assert b"message_delta" not in names
    t0 = time.monotonic()
    got, _, raw = await post(upstream, {"model": "slow-stream", "stream": True, "fake_delay_ms": 20, **base})
    assert got == 200 and time.monotonic() - t0 >= 0.02 * (len(events_of(raw)) - 1) * 0.9
