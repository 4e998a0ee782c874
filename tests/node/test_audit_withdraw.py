"""The operator's side of the money: earnings can be withdrawn, users' money cannot, and the audit
proves the books (ledger, coverage, proofs unspent at the mint) or says what is wrong."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import update

from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage.schema import api_keys
from routstr.wallet.audit import audit
from routstr.wallet.withdraw import WouldTouchUserMoney, earnings, withdraw
from tests.conftest import NodeHandle, Upstream, _backends, chat_body, node_env, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session", params=_backends())
async def fresh_node(
    request: pytest.FixtureRequest, mint_url: str, fake_upstream: Upstream, tmp_path: Path
) -> AsyncIterator[NodeHandle]:
    async with running_node(request.param, mint_url, fake_upstream, tmp_path) as n:
        yield n


async def earn(
    node: NodeHandle, wallet: TestWallet, mint_url: str, sats: int, requests: int
) -> dict[str, str]:
    token = await wallet.asend(mint_url, sats)
    bearer = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        for _ in range(requests):
            body = chat_body("tell me a long story " * 40, max_tokens=400)
            async with http.post(node.v1 + "/chat/completions", json=body, headers=bearer) as r:
                assert r.status == 200
    return bearer


async def test_earnings_are_withdrawn_user_money_is_not(
    fresh_node: NodeHandle, wallet: TestWallet, mint_url: str
):
    node = fresh_node
    mints = node.app[NODE].mints
    bearer = await earn(node, wallet, mint_url, 300, 6)
    key_id = await node.app[NODE].auth.key_id(bearer["Authorization"][7:])
    spent = (await node.key_row(key_id)).total_spent_msat
    assert await earnings(node.db, mint_url, "sat") == spent // 1000 > 0
    with pytest.raises(WouldTouchUserMoney):
        await withdraw(node.db, mints, mint_url, "sat", spent // 1000 + 1)
    w = await withdraw(node.db, mints, mint_url, "sat", None)
    assert w.amount == spent // 1000 and await wallet.areceive(w.token) == w.amount
    assert await earnings(node.db, mint_url, "sat") == 0
    with pytest.raises(WouldTouchUserMoney):
        await withdraw(node.db, mints, mint_url, "sat", 1)
    report = await audit(node.db, mints)
    assert report.ok, report.problems
    assert report.proofs_checked > 0
    row = await node.assert_books_balance(key_id)  # the user's balance is untouched
    assert row.balance_msat == 300_000 - spent


async def run_cli(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``routstr`` as an operator runs it, in a thread (the node under test shares this loop)."""
    return await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=60)


async def test_the_audit_finds_a_balance_the_ledger_does_not_explain(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with running_node(backend, mint_url, fake_upstream, tmp_path) as node:
        bearer = await earn(node, wallet, mint_url, 50, 1)
        key_id = await node.app[NODE].auth.key_id(bearer["Authorization"][7:])
        env = {
            **os.environ,
            **node_env(mint_url, fake_upstream.url, node.settings.database_url, tmp_path / "pricing.toml"),
        }
        cli = [sys.executable, "-m", "routstr", "audit", "--env-file", ""]
        ok = await run_cli(cli, env)
        assert ok.returncode == 0, ok.stderr
        assert "audit: OK" in ok.stderr
        async with node.db.write() as conn:  # money appears from nowhere: the books cannot explain it
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(balance_msat=api_keys.c.balance_msat + 5_000_000)
            )
        bad = await run_cli(cli, env)
        assert bad.returncode == 1
        assert f"key {key_id}: stored balance" in bad.stderr and "short by" in bad.stderr
        withdraw_cli = [sys.executable, "-m", "routstr", "withdraw", "--amount", "1", "--env-file", ""]
        refused = await run_cli(withdraw_cli, env)
        assert refused.returncode == 1 and "would take money it owes its users" in refused.stderr
