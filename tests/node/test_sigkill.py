"""A real node process killed with SIGKILL at the worst lines, then restarted: nothing is lost.

Each test arms one failpoint (routstr/core/failpoints.py) in a `routstr serve` subprocess, makes the
request that reaches it (the process dies there, mid-request), restarts the node on the same
database without it, and checks the money: the mint's records, the ledger and the balance.
"""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.conftest import chat_body
from tests.node.node_process import NodeProcess, assert_audit_passes, balance_of, post_dies

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_killed_after_the_mint_swapped_the_token(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 30)
    await asyncio.to_thread(node_proc.start, "redeem.after_swap")
    await post_dies(
        http, node_proc.url + "/v1/chat/completions", json=chat_body(max_tokens=5),
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert node_proc.wait_killed() == -signal.SIGKILL
    assert set(await wallet.acheck(token)) == {"SPENT"}  # the mint swapped it; we stored nothing after
    await asyncio.to_thread(node_proc.start)  # recovery at start-up finishes the swap (NUT-09)
    for _ in range(100):
        async with http.get(
            node_proc.url + "/v1/balance/info", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            if r.status == 200:
                break
        await asyncio.sleep(0.1)
    info = await balance_of(http, node_proc, token)
    assert info["balance"] == 30_000 and info["reserved"] == 0
    async with http.post(
        node_proc.url + "/v1/chat/completions", json=chat_body(max_tokens=5),
        headers={"Authorization": f"Bearer {token}"},
    ) as r:  # fmt: skip
        assert r.status == 200
        cost = int(r.headers["X-Routstr-Cost-Msats"])
    assert (await balance_of(http, node_proc, token))["balance"] == 30_000 - cost
    await assert_audit_passes(node_proc)


async def test_killed_after_the_refund_swap(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 25)
    await asyncio.to_thread(node_proc.start, "refund.after_swap")
    assert (await balance_of(http, node_proc, token))["balance"] == 25_000
    await post_dies(http, node_proc.url + "/v1/balance/refund", headers={"Authorization": f"Bearer {token}"})
    assert node_proc.wait_killed() == -signal.SIGKILL
    await asyncio.to_thread(node_proc.start)
    async with http.post(
        node_proc.url + "/v1/balance/refund", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 200, await r.text()
        refund = await r.json()
    assert refund["amount"] == 25
    assert await wallet.areceive(refund["token"]) == 25
    assert (await balance_of(http, node_proc, token))["balance"] == 0
    await assert_audit_passes(node_proc)


async def test_killed_between_forward_and_settle(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    token = await wallet.asend(mint_url, 20)
    await asyncio.to_thread(node_proc.start, "pipeline.before_settle")
    assert (await balance_of(http, node_proc, token))["balance"] == 20_000
    await post_dies(
        http, node_proc.url + "/v1/chat/completions", json=chat_body(max_tokens=5),
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert node_proc.wait_killed() == -signal.SIGKILL
    await asyncio.to_thread(node_proc.start)
    # the reservation outlived its TTL (1 s here): the sweeper gives it back; the user pays nothing
    for _ in range(100):
        info = await balance_of(http, node_proc, token)
        if info["reserved"] == 0:
            break
        await asyncio.sleep(0.1)
    assert info["balance"] == 20_000 and info["reserved"] == 0
    await assert_audit_passes(node_proc)
