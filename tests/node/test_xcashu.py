"""X-Cashu: a Cashu token pays for one request and the change comes back as a token (NUT-24).

Everything here runs against real Nutshell mints: the change each test gets is redeemed at the mint.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
import pytest_asyncio

from routstr.cashu.identity import token_identity
from routstr.cashu.nut18 import decode_payment_request
from routstr.cashu.tokens import decode_token
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet
from routstr.storage import accounts
from tests.conftest import NodeHandle, Upstream, _backends, chat_body, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")


def paid(token: str) -> dict[str, str]:
    return {"X-Cashu": token}


async def one_shot_key(node: NodeHandle, token: str) -> accounts.KeyRow:
    """The balance an X-Cashu token was redeemed into (known by the token's identity)."""
    from routstr.node import NODE

    th = token_identity(node.app[NODE].auth.secret, decode_token(token))
    async with node.db.read() as conn:
        row = await accounts.key_by_hash(conn, th)
    assert row is not None and row.kind == "xcashu"
    return await node.assert_books_balance(row.id)


async def test_a_token_pays_and_the_change_redeems_at_the_mint(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 50)
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=50), headers=paid(token)
    ) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
        change = r.headers["X-Cashu"]
        assert r.headers["X-Cashu-Refund"] == change  # the spec's prose names this header too
        cost_msat = int(r.headers["X-Routstr-Cost-Msats"])
    assert cost_msat > 0 and cost_msat % 1000 == 0  # a sat token is charged whole sats
    cost = body["usage"]["cost"]
    assert cost["x_cashu"] == change and cost["change_unit"] == "sat"
    # cost + change = the token's value, to the sat (this mint charges no fee)
    assert cost_msat // 1000 + cost["change"] == 50
    change_token = decode_token(change)
    assert change_token.mint == mint_url and change_token.unit == "sat"
    assert await wallet.areceive(change) == cost["change"]
    key = await one_shot_key(node, token)
    assert key.balance_msat == 0 and key.reserved_msat == 0 and key.total_spent_msat == cost_msat


async def test_an_msat_token_is_charged_to_the_msat(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 40_000, unit="msat")
    assert decode_token(token).unit == "msat"
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=50), headers=paid(token)
    ) as r:
        assert r.status == 200, await r.text()
        cost_msat = int(r.headers["X-Routstr-Cost-Msats"])
        change = decode_token(r.headers["X-Cashu"])
    assert change.unit == "msat" and cost_msat + change.amount == 40_000  # no rounding to the sat
    assert await wallet.areceive(r.headers["X-Cashu"]) == change.amount
    key = await one_shot_key(node, token)
    assert key.total_spent_msat == cost_msat and key.balance_msat == 0


async def test_openai_sdk_pays_with_an_x_cashu_header(node: NodeHandle, wallet: TestWallet, mint_url: str):
    """No Routstr-specific code: a default header on the official SDK (its api_key is ignored)."""
    token = await wallet.asend(mint_url, 30)
    client = openai.AsyncOpenAI(
        base_url=node.v1, api_key="unused", default_headers=paid(token), max_retries=0
    )
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=20
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    change = raw.headers["x-cashu"]
    assert await wallet.areceive(change) == 30 - int(raw.headers["x-routstr-cost-msats"]) // 1000
    await client.close()


async def test_an_upstream_failure_gives_the_whole_token_back(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 40)
    body = chat_body(max_tokens=20, fake_behavior="fail-500")
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 502
        err = await r.json()
        change = r.headers["X-Cashu"]
    assert err["error"]["type"] == "upstream_error"
    assert await wallet.areceive(change) == 40
    key = await one_shot_key(node, token)
    assert key.total_spent_msat == 0 and key.balance_msat == 0


async def test_a_bad_request_never_touches_the_token(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 10)
    async with http.post(
        node.v1 + "/chat/completions", json={"model": "gpt-4o-mini"}, headers=paid(token)
    ) as r:
        assert r.status == 400
        assert "X-Cashu" not in r.headers
    assert await wallet.acheck(token) == ["UNSPENT"] * len(decode_token(token).proofs)


def sse_events(raw: bytes) -> list[bytes]:
    return [ev for ev in raw.split(b"\n\n") if ev.strip()]


def early_of(r: aiohttp.ClientResponse) -> tuple[str | None, int]:
    """A stream's early change (its headers' X-Cashu) and its amount; none if it was not ready in time
    (then it is in the final event's change)."""
    value = r.headers.get("X-Cashu")
    return value, decode_token(value).amount if value else 0


def data_of(event: bytes) -> Any:
    for line in event.split(b"\n"):
        if line.startswith(b"data: "):
            payload = line[6:]
            return payload if payload == b"[DONE]" else orjson.loads(payload)
    return None


async def test_a_stream_ends_with_its_change_which_can_be_fetched_again(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 60)
    # the client did not ask for usage: it gets it anyway, on the finish chunk (no choices: [] chunk)
    body = chat_body(max_tokens=40, stream=True)
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 200
        early, early_amount = early_of(r)
        events = sse_events(await r.read())
    assert data_of(events[-1]) == b"[DONE]"
    final = data_of(events[-2])
    assert final["choices"][0]["finish_reason"] and final["usage"]["completion_tokens"] > 0
    assert all(data_of(e)["choices"] for e in events[:-1])
    cost = final["usage"]["cost"]
    assert cost["early_change"] == early_amount
    assert cost["msats"] % 1000 == 0 and cost["msats"] // 1000 + early_amount + cost["change"] == 60
    assert any(
        data_of(e)["choices"] and data_of(e)["choices"][0]["delta"].get("content") for e in events[:-2]
    )
    # a client that lost the stream asks again with the token it paid with, and gets all of the change
    async with http.post(node.v1 + "/balance/refund", headers=paid(token)) as r:
        assert r.status == 200, await r.text()
        again = await r.json()
    assert again["amount"] == early_amount + cost["change"] == 60 - cost["msats"] // 1000
    if cost["x_cashu"] is None:  # all of it came early: the very token of the stream's headers
        assert again["token"] == early
    assert await wallet.areceive(again["token"]) == again["amount"]
    async with http.post(node.v1 + "/balance/refund", headers=paid(token)) as r:
        # all redeemed: nothing is left to hand out (a spent token again would only fail at the mint)
        body = await r.json()
        assert r.status == 400 and "redeemed already" in body["error"]["message"], body
        assert "X-Cashu" not in r.headers
    await one_shot_key(node, token)


async def test_anthropic_stream_carries_the_change_in_its_message_delta(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 60)
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 30,
        "stream": True,
        "messages": [{"role": "user", "content": "hello"}],
    }
    async with http.post(node.v1 + "/messages", json=body, headers=paid(token)) as r:
        assert r.status == 200
        early, early_amount = early_of(r)
        events = [data_of(e) for e in sse_events(await r.read())]
    delta = next(e for e in events if e["type"] == "message_delta")
    assert events[-1]["type"] == "message_stop"
    cost = delta["usage"]["cost"]
    assert cost["msats"] // 1000 + early_amount + cost["change"] == 60
    for part, amount in ((early, early_amount), (cost["x_cashu"], cost["change"])):
        assert part is None or await wallet.areceive(part) == amount


async def test_the_same_token_twice_at_once_pays_once(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 30)

    async def call() -> tuple[int, dict[str, Any], str | None]:
        body = chat_body(max_tokens=20)
        async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
            return r.status, await r.json(), r.headers.get("X-Cashu")

    results = await asyncio.gather(*(call() for _ in range(4)))
    ok = [r for r in results if r[0] == 200]
    assert len(ok) == 1, results
    for status, body, change in results:
        if status != 200:
            assert status == 400 and body["error"]["code"] == "token_already_spent" and change is None
    key = await one_shot_key(node, token)
    assert key.total_requests == 1
    assert ok[0][2] is not None and await wallet.areceive(ok[0][2]) == ok[0][1]["usage"]["cost"]["change"]


async def test_no_key_gets_a_nut18_payment_request(
    node: NodeHandle, mint_url: str, http: aiohttp.ClientSession
):
    body = {"model": "dall-e-3", "prompt": "a cat", "n": 2}  # 40 sats per image
    async with http.post(node.v1 + "/images/generations", json=body) as r:
        assert r.status == 401  # what OpenAI SDK users expect; MISSING_KEY_STATUS=402 for wallets
        assert (await r.json())["error"]["code"] == "invalid_api_key"
        request = decode_payment_request(r.headers["X-Cashu"])
    assert (request.amount, request.unit, list(request.mints or ())) == (80, "sat", [mint_url])


async def test_a_too_small_token_gets_400_and_stays_spendable(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    """NUT-24: an insufficient amount is a 400; the amount needed is in the details, and X-Cashu on an
    error only ever holds a token (none here: this one was not used)."""
    token = await wallet.asend(mint_url, 30)
    body = {"model": "dall-e-3", "prompt": "a cat"}
    async with http.post(node.v1 + "/images/generations", json=body, headers=paid(token)) as r:
        assert r.status == 400
        err = await r.json()
        assert "X-Cashu" not in r.headers and "X-Cashu-Refund" not in r.headers
    assert err["error"]["type"] == "invalid_request" and err["error"]["code"] == "token_too_small"
    details = err["error"]["details"]
    assert (details["amount"], details["amount_unit"]) == (40, "sat")
    assert (details["required"], details["available"], details["unit"]) == (40_000, 30_000, "msat")
    assert await wallet.acheck(token) == ["UNSPENT"] * len(decode_token(token).proofs)


async def test_a_token_of_another_mint_is_a_400(
    node: NodeHandle, wallet: TestWallet, fee_mint: NutshellMint, http: aiohttp.ClientSession
):
    token = await wallet.asend(fee_mint.url, 10)
    async with http.post(node.v1 + "/chat/completions", json=chat_body(), headers=paid(token)) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "mint_not_accepted"
    assert await wallet.acheck(token) == ["UNSPENT"] * len(decode_token(token).proofs)


async def test_a_proof_with_a_forged_dleq_is_refused(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 8, include_dleq=True)
    proofs = decode_token(token).proofs
    assert proofs and all(p.dleq is not None and p.dleq.r is not None for p in proofs)
    # the same token with its first proof's DLEQ "s" changed: V3 JSON is easy to edit
    import base64

    v3 = orjson.loads(base64.urlsafe_b64decode(_v3(token)[6:] + "=="))
    v3["token"][0]["proofs"][0]["dleq"]["s"] = "11" * 32
    forged = "cashuA" + base64.urlsafe_b64encode(orjson.dumps(v3)).decode().rstrip("=")
    async with http.post(node.v1 + "/chat/completions", json=chat_body(), headers=paid(forged)) as r:
        assert r.status == 400
        assert "DLEQ" in (await r.json())["error"]["message"]
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=paid(token)
    ) as r:
        assert r.status == 200  # the genuine DLEQ verifies


def _v3(token: str) -> str:
    from routstr.cashu.tokens import encode_token_v3

    return encode_token_v3(decode_token(token))


@pytest_asyncio.fixture(loop_scope="session", params=_backends())
async def fee_node(
    request: pytest.FixtureRequest, fee_mint: NutshellMint, fake_upstream: Upstream, tmp_path: Path
) -> AsyncIterator[NodeHandle]:
    async with running_node(
        request.param, fee_mint.url, fake_upstream, tmp_path, MISSING_KEY_STATUS="402"
    ) as n:
        yield n


async def test_fees_are_accounted_and_402_for_wallets(
    fee_node: NodeHandle, wallet: TestWallet, fee_mint: NutshellMint, http: aiohttp.ClientSession
):
    node = fee_node
    async with http.post(node.v1 + "/chat/completions", json=chat_body(max_tokens=10)) as r:
        assert r.status == 402
        assert decode_payment_request(r.headers["X-Cashu"]).mints == (fee_mint.url,)
    token = await wallet.asend(fee_mint.url, 100)
    in_fee = len(decode_token(token).proofs)  # 1 sat per proof spent
    async with http.post(
        node.v1 + "/chat/completions", json=chat_body(max_tokens=10), headers=paid(token)
    ) as r:
        assert r.status == 200, await r.text()
        cost = (await r.json())["usage"]["cost"]
    key = await one_shot_key(node, token)
    sums = await node.ledger_sums(key.id)
    assert sums["credit"] == (100 - in_fee) * 1000  # the node was credited what it really received
    assert sums["charge"] == cost["msats"] and sums["refund"] == sums["credit"] - cost["msats"]
    change = decode_token(cost["x_cashu"])
    out_fee = sums["refund"] // 1000 - cost["change"]  # the change swap paid its own input fee
    assert 1 <= out_fee <= 8 and change.amount == cost["change"]
    # token = cost + change + the mint's fees, to the sat
    assert cost["msats"] // 1000 + cost["change"] + in_fee + out_fee == 100
    assert await wallet.areceive(cost["x_cashu"]) == cost["change"] - len(change.proofs)


async def test_a_mint_that_is_down_gives_503_and_the_token_stays_spendable(
    backend: str, nutshell_python: Path, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
):
    from routstr.node import NODE

    with NutshellMint("xcashu-down") as mint:
        token = await wallet.asend(mint.url, 20)
        async with (
            running_node(backend, mint.url, fake_upstream, tmp_path) as node,
            aiohttp.ClientSession() as http,
        ):
            mints = node.app[NODE].mints
            mint.stop()
            async with http.post(node.v1 + "/chat/completions", json=chat_body(), headers=paid(token)) as r:
                assert r.status == 503
                assert mint.url not in (await r.json())["error"]["message"]  # no internal detail
            await mints.check_health()
            async with http.get(node.v1 + "/info") as r:
                assert (await r.json())["mint_status"] == {mint.url: "down"}
            async with http.post(node.v1 + "/chat/completions", json=chat_body(), headers=paid(token)) as r:
                assert r.status == 503 and (await r.json())["error"]["code"] == "mint_unavailable"  # fast
            mint.start()
            await mints.check_health()
            assert mints.health[mint.url].up
            body = chat_body(max_tokens=5)
            async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
                assert r.status == 200  # the same token, untouched by the failures, now pays
                assert await wallet.areceive(r.headers["X-Cashu"]) > 0


async def test_a_mint_past_its_exposure_limit_is_refused_before_the_token_is_used(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, MINT_MAX_EXPOSURE_SATS="100") as node,
        aiohttp.ClientSession() as http,
    ):
        first = await wallet.asend(mint_url, 80)
        async with http.get(node.v1 + "/balance/info", headers={"Authorization": f"Bearer {first}"}) as r:
            assert r.status == 200 and (await r.json())["balance"] == 80_000
        second = await wallet.asend(mint_url, 30)  # 80 + 30 > 100
        async with http.post(node.v1 + "/chat/completions", json=chat_body(), headers=paid(second)) as r:
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "mint_exposure_limit"
        assert await wallet.acheck(second) == ["UNSPENT"] * len(decode_token(second).proofs)
        small = await wallet.asend(mint_url, 15)  # 95: still within the limit
        async with http.post(
            node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=paid(small)
        ) as r:
            assert r.status == 200, await r.text()


async def test_change_the_mint_could_not_pay_out_waits_and_is_on_the_books(
    backend: str, nutshell_python: Path, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
):
    """The mint goes down while the upstream answers: the change stays on the token's one-shot key,
    the operator's books show it, and the original token fetches it once the mint is back."""
    from routstr.storage.books import books

    with NutshellMint("xcashu-change") as mint:
        token = await wallet.asend(mint.url, 50)
        async with (
            running_node(backend, mint.url, fake_upstream, tmp_path) as node,
            aiohttp.ClientSession() as http,
        ):
            body = chat_body(max_tokens=20, fake_delay_ms=2000)
            request = asyncio.ensure_future(
                http.post(node.v1 + "/chat/completions", json=body, headers=paid(token))
            )
            for _ in range(200):  # wait until the token is redeemed (the upstream is still "thinking")
                async with node.db.read() as conn:
                    if [b.wallet_msat for b in await books(conn)] == [50_000]:
                        break
                await asyncio.sleep(0.01)
            mint.stop()
            r = await request
            assert r.status == 200
            assert "X-Cashu" not in r.headers and r.headers["X-Cashu-Change"].startswith("pending")
            cost_msat = int(r.headers["X-Routstr-Cost-Msats"])
            r.release()
            async with node.db.read() as conn:
                [b] = await books(conn)
            assert b.xcashu_change_msat == 50_000 - cost_msat == b.owed_msat
            assert b.wallet_msat == 50_000 and b.surplus_msat == cost_msat
            mint.start()
            async with http.post(node.v1 + "/balance/refund", headers=paid(token)) as r:
                assert r.status == 200, await r.text()
                change = await r.json()
            assert change["amount"] * 1000 == 50_000 - cost_msat
            assert await wallet.areceive(change["token"]) == change["amount"]
            async with node.db.read() as conn:
                [b] = await books(conn)
            assert b.owed_msat == 0 and b.xcashu_change_msat == 0 and b.surplus_msat == cost_msat
            assert b.uncollected_tokens == 0 and b.pending_swaps == 0


async def test_a_responses_stream_carries_the_change_in_response_completed(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 60)
    body = {"model": "gpt-4o-mini", "input": "hello", "max_output_tokens": 30, "stream": True}
    async with http.post(node.v1 + "/responses", json=body, headers=paid(token)) as r:
        assert r.status == 200
        early, early_amount = early_of(r)
        events = [data_of(e) for e in sse_events(await r.read())]
    assert events[-1]["type"] == "response.completed"
    cost = events[-1]["response"]["usage"]["cost"]
    assert cost["msats"] // 1000 + early_amount + cost["change"] == 60
    for part, amount in ((early, early_amount), (cost["x_cashu"], cost["change"])):
        assert part is None or await wallet.areceive(part) == amount


async def test_a_stream_the_upstream_cuts_still_ends_with_the_change(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 40)
    body = chat_body(max_tokens=30, stream=True, fake_behavior="cut-stream")
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 200
        early, early_amount = early_of(r)
        events = sse_events(await r.read())
    last = data_of(events[-1])  # no usage came: the change has an event of its own
    assert last["object"] == "x_cashu" and last["choices"] == []
    cost = last["usage"]["cost"]
    # billed by the estimate
    assert 0 < cost["msats"] and cost["msats"] // 1000 + early_amount + cost["change"] == 40
    for part, amount in ((early, early_amount), (cost["x_cashu"], cost["change"])):
        assert part is None or await wallet.areceive(part) == amount


async def test_a_client_that_leaves_mid_stream_fetches_its_change_later(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 40)
    body = chat_body(max_tokens=30, stream=True, fake_behavior="slow-stream", fake_delay_ms=100)
    async with http.post(node.v1 + "/chat/completions", json=body, headers=paid(token)) as r:
        assert r.status == 200
        await r.content.readany()  # the first events, then hang up
    for _ in range(100):  # the node notices at its next write, then settles
        key = await one_shot_key(node, token)
        if key.total_requests == 1 and key.reserved_msat == 0:
            break
        await asyncio.sleep(0.05)
    assert key.total_spent_msat > 0  # billed for what was delivered, never zero
    async with http.post(node.v1 + "/balance/refund", headers=paid(token)) as r:
        assert r.status == 200, await r.text()
        change = await r.json()
    assert change["amount"] * 1000 + key.total_spent_msat == 40_000
    assert await wallet.areceive(change["token"]) == change["amount"]


async def test_info_lists_every_fee(node: NodeHandle, http: aiohttp.ClientSession):
    async with http.get(node.v1 + "/info") as r:
        fees = (await r.json())["fees"]
    assert fees["provider_markup"] == {"upstream": "0"}
    assert "whole sats" in fees["x_cashu_rounding"] and fees["foreign_mint_conversion"] == "off"
