"""The operator's API for scripts: books, audit and withdrawals behind a revocable admin token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from routstr.devtools.test_wallet import TestWallet
from tests.conftest import Upstream, chat_body, node_env, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def cli(env: dict[str, str], *args: str) -> Any:
    cmd = [sys.executable, "-m", "routstr", *args, "--env-file", ""]
    done = await asyncio.to_thread(subprocess.run, cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


async def test_admin_api_books_audit_and_withdraw(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        env = {
            **os.environ,
            **node_env(mint_url, fake_upstream.url, node.settings.database_url, tmp_path / "pricing.toml"),
        }
        token = await wallet.asend(mint_url, 200)
        bearer = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            async with http.post(
                node.v1 + "/chat/completions", json=chat_body("z " * 2000, max_tokens=300), headers=bearer
            ) as r:
                assert r.status == 200
        async with http.get(node.url + "/admin/api/books") as r:
            assert r.status == 401
        async with http.get(node.url + "/admin/api/books", headers=bearer) as r:
            assert r.status == 401  # a user's key is not an admin token
        created = await cli(env, "admin-token", "create", "--name", "tests")
        admin = {"Authorization": f"Bearer {created['token']}"}
        async with http.get(node.url + "/admin/api/books", headers=admin) as r:
            [b] = (await r.json())["books"]
        earned = b["surplus_msat"] // 1000
        assert earned > 0
        async with http.get(node.url + "/admin/api/audit", headers=admin) as r:
            report = await r.json()
        assert report["ok"] is True and report["proofs_checked"] > 0
        async with http.post(
            node.url + "/admin/api/withdraw", json={"amount": earned + 1}, headers=admin
        ) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "withdraw_exceeds_earnings"
        async with http.post(node.url + "/admin/api/withdraw", json={}, headers=admin) as r:
            assert r.status == 200, await r.text()
            w = await r.json()
        assert w["amount"] == earned and await wallet.areceive(w["token"]) == earned
        assert (await cli(env, "admin-token", "revoke", "--id", str(created["id"])))["revoked"] is True
        async with http.get(node.url + "/admin/api/audit", headers=admin) as r:
            assert r.status == 401
        listed = await cli(env, "admin-token", "list")
        assert listed[0]["name"] == "tests" and listed[0]["revoked_at"] and "token" not in listed[0]


async def test_per_key_rate_limit_overrides(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        env = {
            **os.environ,
            **node_env(mint_url, fake_upstream.url, node.settings.database_url, tmp_path / "pricing.toml"),
        }
        admin = {"Authorization": f"Bearer {(await cli(env, 'admin-token', 'create'))['token']}"}
        token = await wallet.asend(mint_url, 50)
        bearer = {"Authorization": f"Bearer {token}"}
        async with http.post(
            node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer
        ) as r:
            assert r.headers["X-RateLimit-Limit"] == "100000"  # the node's default (tests/conftest.py)
        from routstr.node import NODE

        key_id = await node.app[NODE].auth.key_id(token)
        url = node.url + f"/admin/api/keys/{key_id}/limits"
        async with http.put(url, json={"requests_per_minute": 7}, headers=admin) as r:
            assert r.status == 200 and (await r.json())["override"] is True
        async with http.post(
            node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer
        ) as r:
            assert r.headers["X-RateLimit-Limit"] == "7"
        async with http.put(url, json={"requests_per_minute": -1}, headers=admin) as r:
            assert r.status == 400
        async with http.delete(url, headers=admin) as r:
            assert (await r.json())["override"] is False
        async with http.post(
            node.v1 + "/chat/completions", json=chat_body(max_tokens=5), headers=bearer
        ) as r:
            assert r.headers["X-RateLimit-Limit"] == "100000"
