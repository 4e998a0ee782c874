"""What Routstr's own clients read from a node (../shared/spec/routstr-clients.md): the model list's
shapes and paths, the LLM routes without ``/v1``, ``x-routstr-request-id``, and the cost fields the
SDK reads (``usage.cost.total_msats``, ``total_usd``, ``usage.cost_sats``) in every dialect."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from routstr.devtools.audio_files import wav_silence
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from tests.conftest import UPSTREAM_KEY, NodeHandle, Upstream, chat_body, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")

BTC_USD = 100_000  # BTC_USD_PRICE of the test nodes (tests/conftest.py)
MSAT_PER_BTC = 100_000_000_000
RID = "x-routstr-request-id"
HI = [{"role": "user", "content": "Hello there, node!"}]


def assert_cost(usage: dict[str, Any], msats: int) -> None:
    """``usage.cost`` is still an object (LiteLLM, typed SDKs) and has what Routstr's SDK reads."""
    cost = usage["cost"]
    assert isinstance(cost, dict)
    assert cost["total_msats"] == cost["msats"] == msats
    assert usage["cost_sats"] == cost["sats"] == msats / 1000
    assert cost["total_usd"] == pytest.approx(msats * BTC_USD / MSAT_PER_BTC, rel=1e-9)


async def funded_key(node: NodeHandle, wallet: TestWallet, mint_url: str, sats: int) -> tuple[str, int]:
    token = await wallet.asend(mint_url, sats)
    return token, await node.app[NODE].auth.key_id(token)


async def charged(node: NodeHandle, key_id: int) -> int:
    return (await node.ledger_sums(key_id)).get("charge", 0)


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as r:
        return r.status, await r.json()


def is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


async def test_model_list_shapes(node: NodeHandle, http: aiohttp.ClientSession):
    status, body = await get_json(http, node.v1 + "/models")
    assert status == 200
    by_id = {m["id"]: m for m in body["data"]}
    assert {"gpt-4o-mini", "gpt-4o", "whisper-1", "dall-e-3"} <= set(by_id)
    for m in body["data"]:
        ctx, top = m["context_length"], m["top_provider"]
        assert isinstance(ctx, int) and not isinstance(ctx, bool) and ctx > 0, m
        assert top["context_length"] == ctx
        max_out = top["max_completion_tokens"]
        assert isinstance(max_out, int) and max_out > 0
        assert all(is_number(v) for v in m["pricing"].values()), m["pricing"]
        sp = m["sats_pricing"]
        assert all(is_number(sp[k]) for k in ("prompt", "completion", "request", "image", "max_cost")), sp
        # the most a request can cost, from the advertised per-token prices (each rounded up to the msat)
        want_prompt = Decimal(str(sp["prompt"])) * ctx
        want_completion = Decimal(str(sp["completion"])) * max_out
        msat = Decimal("0.001")
        assert want_prompt <= Decimal(str(sp["max_prompt_cost"])) < want_prompt + msat, (m["id"], sp)
        assert want_completion <= Decimal(str(sp["max_completion_cost"])) < want_completion + msat
        want_max = want_prompt + want_completion + Decimal(str(sp["request"]))
        assert want_max <= Decimal(str(sp["max_cost"])) < want_max + msat
        assert sp["max_cost"] >= sp["max_prompt_cost"] and sp["max_cost"] >= sp["max_completion_cost"]
    # the upstream lists whisper-1 with no context length: the documented fallback, the output reserved
    whisper = by_id["whisper-1"]
    assert whisper["context_length"] == node.settings.default_max_output_tokens == 4096
    assert whisper["sats_pricing"]["request"] == 3 and whisper["pricing"]["request"] == pytest.approx(0.003)
    mini = by_id["gpt-4o-mini"]
    assert mini["context_length"] == 128_000
    # 2000 sat/Mtok = 2 msat a token = 2e-11 BTC = 2e-6 USD at 100,000 USD/BTC
    assert mini["pricing"]["prompt"] == pytest.approx(2e-6) and mini["pricing"][
        "completion"
    ] == pytest.approx(7e-6)
    assert mini["sats_pricing"]["max_prompt_cost"] == 256  # 128,000 tokens × 0.002 sat
    assert mini["sats_pricing"]["max_completion_cost"] == pytest.approx(4096 * 0.007)
    assert by_id["gpt-4o"]["pricing"]["request"] == pytest.approx(0.001)


async def test_model_list_under_every_path(node: NodeHandle, http: aiohttp.ClientSession):
    _, listed = await get_json(http, node.v1 + "/models")
    for path in ("/models", "/v1/models/"):
        status, body = await get_json(http, node.url + path)
        assert status == 200 and body == listed, path


async def test_model_paths_of_the_session_node(node: NodeHandle, http: aiohttp.ClientSession):
    _, listed = await get_json(http, node.v1 + "/models")
    status, body = await get_json(http, node.v1 + "/models/paths")
    assert status == 200 and body["object"] == "model_paths"
    assert set(body["paths"]) == {m["id"] for m in listed["data"]}
    name = node.app[NODE].providers[0].name
    assert body["paths"]["gpt-4o-mini"] == [{"provider": name, "model": "gpt-4o-mini", "kind": "openai"}]


async def test_model_paths_aliases_and_fees(
    backend: str, mint_url: str, fake_upstream: Upstream, tmp_path: Path, http: aiohttp.ClientSession
):
    """Two providers (the dearer one serves gpt-4o-mini only) and an alias: each model → who serves
    it, cheapest first, under the model id that provider is asked for."""
    providers = tmp_path / "providers.toml"
    providers.write_text(
        f"""
[[providers]]
name = "pricey"
base_url = "{fake_upstream.url}"
api_key = "{UPSTREAM_KEY}"
fee = 0.5
models = ["gpt-4o-mini"]

[[providers]]
name = "cheap"
base_url = "{fake_upstream.url}"
api_key = "{UPSTREAM_KEY}"

[aliases]
"fast" = ["llama-3.1-8b", "gpt-4o-mini"]
"""
    )
    env = {"UPSTREAM_BASE_URL": "", "PROVIDERS_FILE": str(providers)}
    async with running_node(backend, mint_url, fake_upstream, tmp_path, **env) as n:
        status, body = await get_json(http, n.v1 + "/models/paths")
    assert status == 200
    paths = body["paths"]

    def hop(provider: str, model: str) -> dict[str, str]:
        return {"provider": provider, "model": model, "kind": "openai"}

    assert paths["gpt-4o-mini"] == [hop("cheap", "gpt-4o-mini"), hop("pricey", "gpt-4o-mini")]
    assert paths["llama-3.1-8b"] == [hop("cheap", "llama-3.1-8b")]
    assert paths["fast"] == [
        hop("cheap", "llama-3.1-8b"),
        hop("cheap", "gpt-4o-mini"),
        hop("pricey", "gpt-4o-mini"),
    ]


async def test_chat_completions_without_v1_is_billed_like_v1(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    """routstrd's opencode integration: the OpenAI SDK with the node's root as base URL."""
    token, key_id = await funded_key(node, wallet, mint_url, 100)
    root = AsyncOpenAI(base_url=node.url, api_key=token, max_retries=0)
    raw = await root.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
    resp = raw.parse()
    assert resp.choices[0].message.content and resp.usage is not None
    cost = int(raw.headers["X-Routstr-Cost-Msats"])
    assert cost > 0 and raw.headers[RID] == raw.headers["X-Request-ID"]
    assert_cost(resp.usage.model_dump(), cost)
    # the same request under /v1: the same price
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(), headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 200 and int(r.headers["X-Routstr-Cost-Msats"]) == cost
    # streamed, without /v1: the usage chunk carries the cost; the headers the request id
    raw_stream = await root.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=HI,
        stream=True,
        stream_options={"include_usage": True},  # type: ignore[arg-type]
    )
    assert raw_stream.headers[RID] == raw_stream.headers["X-Request-ID"]
    chunks = [c async for c in raw_stream.parse()]
    assert chunks[-1].usage is not None
    assert_cost(chunks[-1].usage.model_dump(), cost)
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 100_000 - 3 * cost and row.reserved_msat == 0 and row.total_requests == 3


async def test_a_stream_that_did_not_ask_for_usage_gets_it_on_its_finish_chunk(
    node: NodeHandle, wallet: TestWallet, mint_url: str
):
    """As OpenRouter reports it: every stream ends with its usage and cost (routstr-sdk never asks and
    tracks usage from the stream), but on the finish chunk, so that the ``chunk.choices[0]`` loop of
    countless clients meets no ``choices: []`` chunk it did not ask for."""
    token, key_id = await funded_key(node, wallet, mint_url, 100)
    oa = AsyncOpenAI(base_url=node.url + "/v1", api_key=token, max_retries=0)
    text, carriers = "", []
    before = await charged(node, key_id)
    async for chunk in await oa.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True):  # type: ignore[arg-type]
        text += chunk.choices[0].delta.content or ""  # the naive loop: every chunk has a choice
        if chunk.usage is not None:
            carriers.append(chunk)
    assert text and len(carriers) == 1 and carriers[0].choices[0].finish_reason == "stop"
    assert carriers[0].usage is not None and carriers[0].usage.completion_tokens > 0
    assert_cost(carriers[0].usage.model_dump(), await charged(node, key_id) - before)
    # the SDK's own accumulator takes it as the completion's usage
    before = await charged(node, key_id)
    async with oa.chat.completions.stream(model="gpt-4o-mini", messages=HI) as s:  # type: ignore[arg-type]
        final = await s.get_final_completion()
    assert final.choices[0].message.content and final.choices[0].finish_reason == "stop"
    assert final.usage is not None
    assert_cost(final.usage.model_dump(), await charged(node, key_id) - before)
    row = await node.assert_books_balance(key_id)
    assert row.reserved_msat == 0 and row.total_requests == 2


def _form() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    form.add_field("file", wav_silence(2), filename="clip.wav", content_type="audio/wav")
    return form


# path without /v1, body, where the usage is in the answer
JSON_CALLS: list[tuple[str, dict[str, Any] | None]] = [
    ("/chat/completions", {"model": "gpt-4o-mini", "messages": HI}),
    ("/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "Say something short", "max_tokens": 12}),
    ("/embeddings", {"model": "text-embedding-3-small", "input": ["first", "second text"]}),
    ("/responses", {"model": "gpt-4o-mini", "input": "Tell me about sats", "max_output_tokens": 32}),
    ("/images/generations", {"model": "dall-e-3", "prompt": "a cat"}),
    ("/audio/transcriptions", None),  # multipart
    ("/messages", {"model": "claude-haiku-4-5", "max_tokens": 40, "messages": HI}),
]


@pytest.mark.parametrize(("path", "body"), JSON_CALLS, ids=[p for p, _ in JSON_CALLS])
async def test_every_llm_route_without_v1_shows_its_cost(
    node: NodeHandle,
    wallet: TestWallet,
    mint_url: str,
    http: aiohttp.ClientSession,
    path: str,
    body: dict[str, Any] | None,
):
    token, key_id = await funded_key(node, wallet, mint_url, 60)
    headers = {"Authorization": f"Bearer {token}", "X-Request-ID": f"client-{path}"}
    payload: dict[str, Any] = {"json": body} if body is not None else {"data": _form()}
    async with http.post(node.url + path, headers=headers, **payload) as r:
        assert r.status == 200, await r.text()
        answer = await r.json()
        cost = int(r.headers["X-Routstr-Cost-Msats"])
        assert r.headers[RID] == r.headers["X-Request-ID"] == f"client-{path}"
    assert cost > 0
    assert_cost(answer["usage"], cost)
    assert await charged(node, key_id) == cost
    row = await node.assert_books_balance(key_id)
    assert row.balance_msat == 60_000 - cost and row.reserved_msat == 0


async def test_count_tokens_without_v1(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token, key_id = await funded_key(node, wallet, mint_url, 5)
    async with http.post(
        node.url + "/messages/count_tokens",
        json={"model": "claude-haiku-4-5", "messages": HI},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 200 and (await r.json())["input_tokens"] > 0
        assert r.headers[RID] == r.headers["X-Request-ID"]
    assert (await node.assert_books_balance(key_id)).balance_msat == 5_000  # free


async def test_openai_sdk_objects_still_parse_without_v1(node: NodeHandle, wallet: TestWallet, mint_url: str):
    """Typed SDK objects keep parsing with the extra cost fields, on the routes without /v1."""
    token, key_id = await funded_key(node, wallet, mint_url, 60)
    root = AsyncOpenAI(base_url=node.url, api_key=token, max_retries=0)
    emb = await root.embeddings.create(model="text-embedding-3-small", input="hello")
    assert len(emb.data[0].embedding) > 0 and emb.usage.prompt_tokens > 0
    assert emb.usage.model_extra is not None and emb.usage.model_extra["cost_sats"] > 0
    img = await root.images.generate(model="dall-e-3", prompt="a cat")
    assert img.data
    text = await root.audio.transcriptions.create(
        model="whisper-1", file=("clip.wav", wav_silence(2), "audio/wav")
    )
    assert text.text.startswith("fake transcription")
    completion = await root.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say", max_tokens=8)
    assert completion.usage is not None and completion.usage.model_extra["cost"]["total_msats"] > 0  # type: ignore[index]
    answer = await root.responses.create(model="gpt-4o-mini", input="hi", max_output_tokens=16)
    assert answer.output_text and answer.usage is not None
    assert answer.usage.model_extra["cost"]["total_msats"] > 0  # type: ignore[index]
    await node.assert_books_balance(key_id)


async def test_streamed_costs_in_every_dialect(node: NodeHandle, wallet: TestWallet, mint_url: str):
    token, key_id = await funded_key(node, wallet, mint_url, 100)
    oa = AsyncOpenAI(base_url=node.url, api_key=token, max_retries=0)

    before = await charged(node, key_id)
    stream = await oa.completions.create(
        model="gpt-3.5-turbo-instruct",
        prompt="Say something short",
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    last = [c async for c in stream][-1]
    assert last.usage is not None
    assert_cost(last.usage.model_dump(), await charged(node, key_id) - before)

    before = await charged(node, key_id)
    events = oa.responses.create(model="gpt-4o-mini", input="stream me", max_output_tokens=32, stream=True)
    done = [e async for e in await events if e.type == "response.completed"]
    assert len(done) == 1 and done[0].response.usage is not None  # type: ignore[union-attr]
    assert_cost(done[0].response.usage.model_dump(), await charged(node, key_id) - before)  # type: ignore[union-attr]

    # Anthropic Messages, translated from chat: message_delta carries the usage and the cost
    an = AsyncAnthropic(base_url=node.url, api_key=token, max_retries=0)
    before = await charged(node, key_id)
    raw = await an.messages.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=40, messages=HI, stream=True
    )  # type: ignore[arg-type]
    assert raw.headers[RID] == raw.headers["X-Request-ID"]
    deltas = [e async for e in await raw.parse() if e.type == "message_delta"]
    assert len(deltas) == 1
    assert_cost(deltas[0].usage.model_dump(), await charged(node, key_id) - before)
    # and the SDK's own accumulator still builds the final message
    async with an.messages.stream(model="gpt-4o-mini", max_tokens=40, messages=HI) as s:  # type: ignore[arg-type]
        final = await s.get_final_message()
    assert final.content[0].text.startswith("Echo:")  # type: ignore[union-attr]
    row = await node.assert_books_balance(key_id)
    assert row.reserved_msat == 0 and row.total_requests == 4


async def test_native_anthropic_stream_cost(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    """An Anthropic-type provider: its own message_delta is held back and sent with the cost."""
    providers = tmp_path / "providers.toml"
    providers.write_text(
        f"""
[[providers]]
name = "claude"
base_url = "{fake_upstream.url}"
api_key = "{UPSTREAM_KEY}"
type = "anthropic"
"""
    )
    env = {"UPSTREAM_BASE_URL": "", "PROVIDERS_FILE": str(providers)}
    async with running_node(backend, mint_url, fake_upstream, tmp_path, **env) as n:
        token, key_id = await funded_key(n, wallet, mint_url, 20)
        an = AsyncAnthropic(base_url=n.url, api_key=token, max_retries=0)
        msg = await an.messages.create(model="claude-haiku-4-5", max_tokens=40, messages=HI)  # type: ignore[arg-type]
        first = await charged(n, key_id)
        assert_cost(msg.usage.model_dump(), first)
        stream = await an.messages.create(model="claude-haiku-4-5", max_tokens=40, messages=HI, stream=True)  # type: ignore[arg-type]
        deltas = [e async for e in stream if e.type == "message_delta"]
        assert len(deltas) == 1
        assert_cost(deltas[0].usage.model_dump(), await charged(n, key_id) - first)
        await n.assert_books_balance(key_id)


async def test_unknown_post_paths_are_404_in_the_envelope(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token, key_id = await funded_key(node, wallet, mint_url, 5)
    before = node.upstream.state.requests_total
    unknown = (
        "/foo",
        "/v1/foo/bar",
        "/v2/chat/completions",
        "/chat/completions/more",
        "/v1/v1/chat/completions",
    )
    for path in unknown:
        async with http.post(
            node.url + path, json=chat_body(), headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.status == 404, path
            err = (await r.json())["error"]
            assert err["type"] == "not_found" and isinstance(err["message"], str) and "code" in err
            assert r.headers[RID] == r.headers["X-Request-ID"]
    assert node.upstream.state.requests_total == before  # nothing reached an upstream
    assert (await node.assert_books_balance(key_id)).balance_msat == 5_000


async def test_request_id_on_success_and_errors(node: NodeHandle, http: aiohttp.ClientSession):
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/v1/info", {}, 200),
        ("GET", "/models", {}, 200),
        (
            "POST",
            "/chat/completions",
            {"json": chat_body(), "headers": {"Authorization": "Bearer sk-x"}},
            401,
        ),
        ("POST", "/v1/chat/completions", {"data": b"{not json"}, 400),  # the body is read before the key
        ("GET", "/v1/nothing-here", {}, 404),
        ("PUT", "/v1/models", {}, 405),
    ]
    for method, path, kw, status in cases:
        async with http.request(method, node.url + path, **kw) as r:
            assert r.status == status, (path, await r.text())
            rid = r.headers["X-Request-ID"]
            assert rid and r.headers[RID] == rid
            if status >= 400:
                assert set(json.loads(await r.read())["error"]) >= {"type", "message", "code"}
    # a client's own id is answered under both names
    async with http.get(node.v1 + "/info", headers={"X-Request-ID": "trace-42"}) as r:
        assert r.headers["X-Request-ID"] == r.headers[RID] == "trace-42"
    # a request aiohttp cannot parse: its 400 (in the envelope) has both too
    host, port = node.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head = answer.split(b"\r\n\r\n", 1)[0].decode().lower().split("\r\n")
    ids = {k: v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    assert b" 400 " in answer[:20] and b'"code":"malformed_request"' in answer
    assert ids[RID] and ids[RID] == ids["x-request-id"]


async def test_xcashu_answer_has_the_cost_fields(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    """A token in X-Cashu pays for one request: the cost object has the SDK's fields and the change."""
    token = await wallet.asend(mint_url, 50)
    async with http.post(
        node.url + "/chat/completions", json=chat_body(max_tokens=50), headers={"X-Cashu": token}
    ) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
        cost = int(r.headers["X-Routstr-Cost-Msats"])
        change = r.headers["X-Cashu"]
    assert_cost(body["usage"], cost)
    assert body["usage"]["cost"]["x_cashu"] == change
    assert cost // 1000 + body["usage"]["cost"]["change"] == 50
    assert await wallet.areceive(change) == body["usage"]["cost"]["change"]
