"""SIGKILL at the worst line of invoice settlement, a Lightning payout and a withdrawal; after a
restart, ``routstr audit`` passes and nobody lost a msat (see tests/node/test_sigkill.py)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import aiohttp
import orjson
import pytest

from routstr.cashu.mint_client import MintClient
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet
from tests.node.node_process import NodeProcess, assert_audit_passes, balance_of, post_dies, routstr_cli

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def payee(nutshell_python: object) -> Iterator[NutshellMint]:
    with NutshellMint("ln-payee-kill", extra_env={"FAKEWALLET_BRR": "False"}) as m:
        yield m


async def test_killed_after_the_mint_signed_an_invoice_s_ecash(
    node_proc: NodeProcess, http: aiohttp.ClientSession
):
    await asyncio.to_thread(node_proc.start, "invoice.after_mint")
    async with http.post(node_proc.url + "/lightning/invoice", json={"amount_sats": 70}) as r:
        invoice_id = (await r.json())["invoice_id"]
    with pytest.raises(aiohttp.ClientError):
        async with http.get(node_proc.url + f"/lightning/invoice/{invoice_id}/status") as r:
            await r.read()
    assert node_proc.wait_killed() == -signal.SIGKILL
    await asyncio.to_thread(node_proc.start)  # start-up recovery restores the signed outputs (NUT-09)
    async with http.get(node_proc.url + f"/lightning/invoice/{invoice_id}/status") as r:
        st = await r.json()
    assert st["state"] == "paid" and st["balance"] == 70_000
    info = await balance_of(http, node_proc, st["api_key"])
    assert info["balance"] == 70_000  # credited once
    await assert_audit_passes(node_proc)


async def test_killed_after_a_lightning_payout_was_paid(
    node_proc: NodeProcess,
    wallet: TestWallet,
    mint_url: str,
    payee: NutshellMint,
    http: aiohttp.ClientSession,
):
    token = await wallet.asend(mint_url, 200)
    await asyncio.to_thread(node_proc.start, "payout.after_melt")
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await balance_of(http, node_proc, token))["balance"] == 200_000
    async with aiohttp.ClientSession() as s:
        bolt11 = (await MintClient(payee.url, s).mint_quote(60)).bolt11
    await post_dies(http, node_proc.url + "/v1/balance/refund", json={"bolt11": bolt11}, headers=bearer)
    assert node_proc.wait_killed() == -signal.SIGKILL
    await asyncio.to_thread(node_proc.start)  # recovery reads the quote (PAID) and stores the change
    for _ in range(100):  # start-up recovery runs in the background
        info = await balance_of(http, node_proc, token)
        if info["balance"] != (200 - 62) * 1000:
            break
        await asyncio.sleep(0.05)
    assert info["balance"] == (200 - 60 - 1) * 1000  # paid 60, 1 sat routing fee, the rest came back
    await assert_audit_passes(node_proc)


async def test_killed_after_a_withdrawal_swap(
    node_proc: NodeProcess,
    wallet: TestWallet,
    mint_url: str,
    http: aiohttp.ClientSession,
):
    token = await wallet.asend(mint_url, 300)
    await asyncio.to_thread(node_proc.start)
    bearer = {"Authorization": f"Bearer {token}"}
    for _ in range(4):  # earn something
        body = {
            "model": "gpt-4o-mini",
            "max_tokens": 300,
            "messages": [{"role": "user", "content": "x " * 2000}],
        }
        async with http.post(node_proc.url + "/v1/chat/completions", json=body, headers=bearer) as r:
            assert r.status == 200
    died = await routstr_cli(node_proc, "withdraw", "--amount", "2", failpoint="withdraw.after_swap")
    assert died.returncode == -signal.SIGKILL
    again = await routstr_cli(node_proc, "withdraw", "--amount", "2")  # hands out the one that went through
    assert again.returncode == 0, again.stderr
    out = orjson.loads(again.stdout)
    assert out["amount"] == 2 and await wallet.areceive(out["token"]) == 2
    info = await balance_of(http, node_proc, token)
    assert info["balance"] + info["total_spent"] == 300_000  # the user's money was never touched
    await assert_audit_passes(node_proc)
