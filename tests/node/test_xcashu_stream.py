"""A streamed X-Cashu request pays its change in two parts (issue 15): what the request cannot cost in
the ``X-Cashu`` header when the stream starts, the rest in its final event.

Against real Nutshell mints: every part is redeemed with the test wallet, and early change + final
change + cost = the token's value, to the sat or msat, checked against the one-shot key's ledger. A
mint of the tests' own sits behind a gate (a small proxy) that holds or refuses its swaps on demand:
a slow or dead mint at the stream's start.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from aiohttp import web

from routstr.cashu.tokens import decode_token
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet
from routstr.storage import accounts
from routstr.wallet.audit import audit
from tests.conftest import NodeHandle, Upstream, chat_body, running_node
from tests.node.test_xcashu import data_of, one_shot_key, paid, sse_events

pytestmark = pytest.mark.asyncio(loop_scope="session")


def app_of(node: NodeHandle) -> Any:
    from routstr.node import NODE

    return node.app[NODE]


@pytest.fixture
def patient(node: NodeHandle) -> Iterator[NodeHandle]:
    """The session node, its stream headers waiting for the early change as long as it takes (it is
    made in tens of ms): whether the change is early is then not a matter of timing."""
    xcashu = app_of(node).xcashu
    before, xcashu.change_wait_s = xcashu.change_wait_s, 60.0
    try:
        yield node
    finally:
        xcashu.change_wait_s = before


async def assert_audit(node: NodeHandle) -> None:
    report = await audit(node.db, app_of(node).mints)
    assert report.ok, report.problems


async def key_books(node: NodeHandle, token: str) -> tuple[accounts.KeyRow, dict[str, int]]:
    key = await one_shot_key(node, token)  # its ledger explains its balance
    return key, await node.ledger_sums(key.id)


def final_cost(events: list[bytes]) -> dict[str, Any]:
    """``usage.cost`` of the stream's last event that has one."""
    for ev in reversed(events):
        obj = data_of(ev)
        if isinstance(obj, dict) and isinstance((obj.get("usage") or {}).get("cost"), dict):
            cost: dict[str, Any] = obj["usage"]["cost"]
            return cost
    raise AssertionError("no cost in the stream")


async def test_the_openai_sdk_gets_the_early_change_before_the_first_chunk(
    patient: NodeHandle, wallet: TestWallet, mint_url: str
):
    node = patient
    token = await wallet.asend(mint_url, 100)
    client = openai.AsyncOpenAI(
        base_url=node.v1, api_key="unused", default_headers=paid(token), max_retries=0
    )
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=1000, stream=True
    )
    early = raw.headers["x-cashu"]  # in the headers: before any chunk was read
    assert early.startswith("cashuB") and raw.headers["x-cashu-refund"] == early
    early_token = decode_token(early)
    assert (early_token.mint, early_token.unit) == (mint_url, "sat")
    assert await wallet.areceive(early) == early_token.amount > 0
    chunks = [chunk.to_dict() async for chunk in raw.parse()]
    await client.close()
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    cost = chunks[-1]["usage"]["cost"]
    assert cost["early_change"] == early_token.amount and cost["change_unit"] == "sat"
    final = cost["change"]
    if final:
        assert await wallet.areceive(cost["x_cashu"]) == final
    key, sums = await key_books(node, token)
    # the early change is what the reservation left; the final one what the request did not use of it
    assert sums["credit"] == 100_000 and sums["reserve"] - sums.get("release", 0) == cost["msats"]
    assert early_token.amount * 1000 == sums["credit"] - sums["reserve"]
    assert final * 1000 == sums.get("release", 0) and sums["refund"] == (early_token.amount + final) * 1000
    assert cost["msats"] % 1000 == 0 and cost["msats"] // 1000 + early_token.amount + final == 100
    assert (key.balance_msat, key.reserved_msat, key.total_spent_msat) == (0, 0, cost["msats"])
    await assert_audit(node)


async def test_an_msat_token_adds_up_to_the_msat(
    patient: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    node = patient
    token = await wallet.asend(mint_url, 40_000, unit="msat")
    body = chat_body(max_tokens=500, stream=True)
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        early = r.headers["X-Cashu"]  # the headers are in; no byte of the body read yet
        events = sse_events(await r.read())
    assert data_of(events[-1]) == b"[DONE]"
    cost = final_cost(events)
    early_amount = decode_token(early).amount
    assert decode_token(early).unit == "msat" and cost["change_unit"] == "msat"
    assert cost["early_change"] == early_amount
    # both parts are real: the reservation (500 output tokens) is far above this short answer's cost
    assert early_amount > 0 and cost["change"] > 0
    assert early_amount + cost["change"] + cost["msats"] == 40_000
    assert await wallet.areceive(early) == early_amount
    assert await wallet.areceive(cost["x_cashu"]) == cost["change"]
    _, sums = await key_books(node, token)
    assert sums["refund"] == 40_000 - cost["msats"] and sums["charge"] == cost["msats"]
    await assert_audit(node)


async def test_an_upstream_failing_before_the_stream_gives_the_whole_token_back(
    patient: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    """The early change was made while the upstream failed: it and the reservation come back as one
    token, the whole value, in the error's X-Cashu."""
    node = patient
    token = await wallet.asend(mint_url, 40)
    body = chat_body(max_tokens=100, stream=True, fake_behavior="fail-500")
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 502
        assert (await r.json())["error"]["type"] == "upstream_error"
        back = r.headers["X-Cashu"]
        assert "X-Cashu-Change" not in r.headers
    assert back.startswith("cashuB") and decode_token(back).amount == 40
    assert await wallet.areceive(back) == 40
    key, sums = await key_books(node, token)
    assert sums["refund"] == sums["credit"] == 40_000 and key.total_spent_msat == 0
    assert sums["reserve"] == sums["release"]  # not charged
    await assert_audit(node)


async def test_an_upstream_cut_mid_stream_returns_all_it_did_not_deliver(
    patient: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    node = patient
    token = await wallet.asend(mint_url, 40)
    body = chat_body(max_tokens=1000, stream=True, fake_behavior="cut-stream")
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 200
        early = r.headers["X-Cashu"]
        events = sse_events(await r.read())
    last = data_of(events[-1])  # no usage came: the rest of the change has an event of its own
    assert last["object"] == "x_cashu"
    cost = last["usage"]["cost"]
    early_amount = decode_token(early).amount
    assert 0 < cost["msats"] and cost["msats"] // 1000 + early_amount + cost["change"] == 40
    assert await wallet.areceive(early) == early_amount
    assert await wallet.areceive(cost["x_cashu"]) == cost["change"] > 0
    key, sums = await key_books(node, token)
    assert key.total_spent_msat == cost["msats"] == sums["charge"]  # the estimate of what was delivered
    assert sums["refund"] == 40_000 - cost["msats"]
    await assert_audit(node)


async def test_a_client_that_leaves_mid_stream_is_billed_for_what_it_got_and_fetches_the_rest(
    patient: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    node = patient
    token = await wallet.asend(mint_url, 40)
    body = chat_body(max_tokens=1000, stream=True, fake_behavior="slow-stream", fake_delay_ms=100)
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 200
        early = r.headers["X-Cashu"]
        await r.content.readany()  # the first events, then hang up
    assert await wallet.areceive(early) == decode_token(early).amount
    for _ in range(200):  # the node notices at its next write, then settles
        key = await one_shot_key(node, token)
        if key.total_requests == 1 and key.reserved_msat == 0:
            break
        await asyncio.sleep(0.05)
    _, sums = await key_books(node, token)
    assert 0 < key.total_spent_msat < sums["reserve"]  # billed for what was delivered, not the reservation
    assert key.balance_msat == sums["reserve"] - key.total_spent_msat  # the rest waits on the key
    async with http.post(node.v1 + "/balance/refund", headers=paid(token)) as r:
        assert r.status == 200, await r.text()
        rest = await r.json()
    # the early change was redeemed: only the rest comes, the key's balance
    assert rest["amount"] * 1000 == rest["msats"] == sums["reserve"] - key.total_spent_msat
    assert await wallet.areceive(rest["token"]) == rest["amount"]
    assert (decode_token(early).amount + rest["amount"]) * 1000 + key.total_spent_msat == 40_000
    key, sums = await key_books(node, token)
    assert key.balance_msat == 0 and sums["refund"] == 40_000 - key.total_spent_msat
    await assert_audit(node)


async def test_a_too_small_token_for_a_stream_is_a_400_with_the_amount_needed(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 2)
    body = chat_body(max_tokens=100_000, stream=True)  # at 7,000 sat per million output tokens: 700 sat
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 400
        err = (await r.json())["error"]
        assert "X-Cashu" not in r.headers  # no creqA: X-Cashu on an error only ever holds a token
    assert err["code"] == "token_too_small" and err["details"]["amount_unit"] == "sat"
    assert err["details"]["amount"] >= 700 and err["details"]["available"] == 2_000
    assert err["details"]["required"] == err["details"]["amount"] * 1000
    assert set(await wallet.acheck(token)) == {"UNSPENT"}
    # with no token at all, a NUT-24 wallet still gets the payment request
    async with http.post(node.v1 + "/chat/completions", json=body) as r:
        assert r.status == 401 and r.headers["X-Cashu"].startswith("creqA")


# -- a mint that is slow or down when the stream starts ---------------------------------------------


class MintGate:
    """A proxy in front of a real mint: passes every request, except swaps when told to hold them (a
    slow mint) or refuse them (a mint that is down), after letting ``after`` more swaps through."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.url = ""
        self.mode = "open"
        self.after = 0
        self.released = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    def hold(self, after: int) -> None:
        self.mode, self.after = "hold", after
        self.released.clear()

    def refuse(self, after: int) -> None:
        self.mode, self.after = "refuse", after

    def open(self) -> None:
        self.mode = "open"
        self.released.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path == "/v1/swap" and self.mode != "open":
            if self.after > 0:
                self.after -= 1
            elif self.mode == "refuse":
                return web.Response(status=503, text="mint down")
            else:
                await self.released.wait()
        assert self._session is not None
        async with self._session.request(
            request.method,
            self.target + request.path_qs,
            data=await request.read(),
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        ) as r:
            return web.Response(body=await r.read(), status=r.status, content_type=r.content_type)

    async def __aenter__(self) -> MintGate:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.open()
        assert self._runner is not None and self._session is not None
        await self._runner.cleanup()
        await self._session.close()


@pytest.fixture(scope="module")
def gated_mint(nutshell_python: Path) -> Iterator[NutshellMint]:
    with NutshellMint("xcashu-gated") as m:
        yield m


@pytest_asyncio.fixture(loop_scope="session")
async def gated(
    gated_mint: NutshellMint, backend: str, fake_upstream: Upstream, tmp_path: Path
) -> AsyncIterator[tuple[MintGate, NodeHandle]]:
    """A node whose only mint is behind the gate; its stream headers wait 0.2 s at most."""
    async with MintGate(gated_mint.url) as gate:
        async with running_node(backend, gate.url, fake_upstream, tmp_path) as node:
            app_of(node).xcashu.change_wait_s = 0.2
            yield gate, node


async def test_a_slow_mint_at_the_start_lets_the_stream_flow_and_the_change_comes_at_the_end(
    gated: tuple[MintGate, NodeHandle], wallet: TestWallet, http: aiohttp.ClientSession
):
    gate, node = gated
    token = await wallet.asend(gate.url, 50)
    gate.hold(after=1)  # the token's redemption goes through; the early change's swap waits
    # events spaced out, so that the first ones are relayed before the end (which waits for the change)
    body = chat_body(max_tokens=1000, stream=True, fake_behavior="slow-stream", fake_delay_ms=20)
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 200
        assert "X-Cashu" not in r.headers  # not ready in time: the stream did not wait for it
        first = await r.content.readany()
        assert b'"delta"' in first  # the answer flows while the mint is stuck
        gate.open()
        events = sse_events(first + await r.read())
    cost = final_cost(events)
    assert cost["early_change"] == 0 and "change_pending" not in cost
    # the early part, made late, and the rest: one token in the final event
    assert cost["msats"] // 1000 + cost["change"] == 50
    assert decode_token(cost["x_cashu"]).amount == cost["change"]
    assert await wallet.areceive(cost["x_cashu"]) == cost["change"]
    key, sums = await key_books(node, token)
    assert sums["refund"] == 50_000 - cost["msats"] and key.total_spent_msat == cost["msats"]
    await assert_audit(node)


async def test_a_mint_down_at_the_start_lets_the_stream_flow_and_the_change_is_fetched_later(
    gated: tuple[MintGate, NodeHandle], wallet: TestWallet, http: aiohttp.ClientSession
):
    gate, node = gated
    token = await wallet.asend(gate.url, 50)
    gate.refuse(after=1)  # the redemption goes through; every change swap after it is refused
    body = chat_body(max_tokens=1000, stream=True)
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 200
        assert "X-Cashu" not in r.headers
        events = sse_events(await r.read())
    assert b"Echo" in b"".join(events) and data_of(events[-1]) == b"[DONE]"
    cost = final_cost(events)
    assert cost["change_pending"] is True and cost["x_cashu"] is None and cost["change"] == 0
    key, sums = await key_books(node, token)
    assert key.balance_msat == 50_000 - cost["msats"]  # all the change waits on the key
    assert sums.get("refund", 0) == sums.get("credit", 0) - 50_000  # refunds that failed were given back
    gate.open()
    async with http.post(node.v1 + "/balance/refund", headers=paid(token)) as r:
        assert r.status == 200, await r.text()
        change = await r.json()
    assert change["amount"] * 1000 == change["msats"] == 50_000 - cost["msats"]
    assert await wallet.areceive(change["token"]) == change["amount"]
    key, _ = await key_books(node, token)
    assert key.balance_msat == 0
    await assert_audit(node)
