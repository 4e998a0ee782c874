"""A reservation is a lease renewed while its request runs: a real ``routstr serve`` process (TTL 1 s)
keeps a stream's money held for many TTLs, refunds only what is free meanwhile and charges the
usage at the end; once the process is killed nobody renews it and a restarted node gives it back.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import aiohttp
import orjson
import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.conftest import chat_body
from tests.node.node_process import NodeProcess, assert_audit_passes, balance_of
from tests.pricing_oracle import advertised_prices

pytestmark = pytest.mark.asyncio(loop_scope="session")

TTL_S = 1.0  # RESERVATION_TTL_SECONDS of the node_proc fixture
# echoed back in 17 deltas of 3 words; 21 events 0.4 s apart: a stream of 8 s, eight TTLs
PROMPT = " ".join(f"w{i:02d}" for i in range(50))
SLOW = chat_body(
    PROMPT, max_tokens=300, stream=True, stream_options={"include_usage": True}, fake_delay_ms=400
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def read_all(r: aiohttp.ClientResponse) -> bytes:
    raw = b""
    async for chunk in r.content.iter_any():
        raw += chunk
    return raw


def usage_event(raw: bytes) -> dict[str, Any]:
    """The stream's final usage (OpenAI's ``choices: []`` chunk), with the node's ``cost`` in it."""
    for line in raw.split(b"\n"):
        if line.startswith(b"data: {"):
            event = orjson.loads(line[6:])
            if isinstance(event.get("usage"), dict):
                return event["usage"]  # type: ignore[no-any-return]
    raise AssertionError(raw[-2000:])


async def hold_for(http: aiohttp.ClientSession, node: NodeProcess, token: str, seconds: float) -> int:
    """Sample the key while a request runs: its reservation stays whole the whole time."""
    held = (await balance_of(http, node, token))["reserved"]
    assert held > 0
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        await asyncio.sleep(0.2)
        assert (await balance_of(http, node, token))["reserved"] == held
    return held


async def test_a_stream_longer_than_the_ttl_keeps_its_reservation_and_is_charged(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
) -> None:
    token = await wallet.asend(mint_url, 100)
    await asyncio.to_thread(node_proc.start)
    assert (await balance_of(http, node_proc, token))["balance"] == 100_000
    started = time.monotonic()
    async with http.post(node_proc.url + "/v1/chat/completions", json=SLOW, headers=bearer(token)) as r:
        assert r.status == 200, await r.text()
        reader = asyncio.create_task(read_all(r))
        held = await hold_for(http, node_proc, token, 4 * TTL_S)  # swept after 1-1.5 s if not renewed
        assert not reader.done()
        available = 100_000 - held
        # a refund mid-stream pays out what is free, never the money held for the running request
        async with http.post(node_proc.url + "/v1/balance/refund", headers=bearer(token)) as rr:
            assert rr.status == 200, await rr.text()
            refund = await rr.json()
        assert refund["amount"] == available // 1000 and refund["msats"] == available // 1000 * 1000
        info = await balance_of(http, node_proc, token)
        assert info["reserved"] == held and info["balance"] == available % 1000
        assert not reader.done(), "the stream should still be running"
        raw = await reader
    assert time.monotonic() - started > 5 * TTL_S
    usage = usage_event(raw)
    price = await advertised_prices(http, node_proc.url + "/v1", "gpt-4o-mini")
    cost = price.cost(usage["prompt_tokens"], usage["completion_tokens"])
    assert usage["completion_tokens"] > 40 and usage["cost"]["msats"] == cost > 0
    info = await balance_of(http, node_proc, token)
    assert info["reserved"] == 0 and info["total_spent"] == cost  # charged in full, the rest released
    assert info["balance"] == available % 1000 + held - cost
    assert await wallet.areceive(refund["token"]) == refund["amount"]
    assert "lost their reservation" not in node_proc.log.read_text()
    await assert_audit_passes(node_proc)


async def test_a_killed_streams_reservation_is_released_after_a_restart(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
) -> None:
    token = await wallet.asend(mint_url, 40)
    await asyncio.to_thread(node_proc.start)
    assert (await balance_of(http, node_proc, token))["balance"] == 40_000
    async with http.post(node_proc.url + "/v1/chat/completions", json=SLOW, headers=bearer(token)) as r:
        assert r.status == 200
        await r.content.readany()
        await hold_for(http, node_proc, token, 3 * TTL_S)  # renewed while the process lives
        assert node_proc.proc is not None
        node_proc.proc.send_signal(signal.SIGKILL)
    assert node_proc.wait_killed() == -signal.SIGKILL
    await asyncio.to_thread(node_proc.start)  # nobody renews the dead request's lease: it runs out
    for _ in range(100):
        info = await balance_of(http, node_proc, token)
        if info["reserved"] == 0:
            break
        await asyncio.sleep(0.1)
    assert info["reserved"] == 0 and info["balance"] == 40_000 and info["total_spent"] == 0
    await assert_audit_passes(node_proc)
