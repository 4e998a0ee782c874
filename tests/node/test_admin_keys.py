"""The operator's view of keys, requests, figures and mints (admin API and ``routstr keys`` /
``routstr providers``): what they show equals what was paid and spent, and never a key or its hash."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from routstr.core.keys import key_hash
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from tests.conftest import Upstream, chat_body, node_env, running_node
from tests.node.admin_auth import admin_headers

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def cli(env: dict[str, str], *args: str, stdin: str | None = None, code: int = 0) -> Any:
    cmd = [sys.executable, "-m", "routstr", *args, "--env-file", ""]
    done = await asyncio.to_thread(
        subprocess.run, cmd, env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == code, done.stderr
    return orjson.loads(done.stdout) if code == 0 else done.stderr


async def test_keys_requests_overview_and_mints(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        admin = await admin_headers(node)
        api = node.url + "/admin/api"
        funding = await wallet.asend(mint_url, 300)
        async with http.post(node.v1 + "/balance/create", json={"cashu_token": funding}) as r:
            sk = (await r.json())["api_key"]
        as_key = await wallet.asend(mint_url, 100)  # a token used as the key itself
        costs: list[int] = []
        for i, (key, model) in enumerate(
            [(sk, "gpt-4o-mini"), (sk, "gpt-4o-mini"), (sk, "llama-3.1-8b"), (as_key, "gpt-4o-mini")]
        ):
            async with http.post(
                node.v1 + "/chat/completions",
                json=chat_body(f"request {i} " * (i + 1), model=model, max_tokens=20),
                headers={"Authorization": f"Bearer {key}"},
            ) as r:
                assert r.status == 200
                costs.append(int(r.headers["X-Routstr-Cost-Msats"]))
        async with http.post(
            node.v1 + "/chat/completions",
            json=chat_body("fails upstream", model="fail-500"),
            headers={"Authorization": f"Bearer {sk}"},
        ) as r:
            assert r.status == 502  # not charged
        sk_id = await node.app[NODE].auth.key_id(sk)
        token_id = await node.app[NODE].auth.key_id(as_key)
        async with http.get(node.v1 + "/balance/info", headers={"Authorization": f"Bearer {sk}"}) as r:
            info = await r.json()

        async with http.get(api + "/keys", params={"q": sk}) as r:
            assert r.status == 401
        secret = node.app[NODE].auth.secret
        forbidden = (sk, key_hash(secret, sk), as_key, funding)
        for q, expected in ((sk, sk_id), (funding, sk_id), (as_key, token_id), (str(sk_id), sk_id)):
            async with http.get(api + "/keys", params={"q": q}, headers=admin) as r:
                text = await r.text()
                [found] = (await r.json())["keys"]
            assert found["id"] == expected and not any(f in text for f in forbidden)
            if expected == sk_id:
                assert (found["balance_msat"], found["reserved_msat"]) == (info["balance"], 0)
                assert found["total_spent_msat"] == sum(costs[:3]) and found["total_requests"] == 4
                assert found["mint"] == mint_url and found["unit"] == "sat" and found["kind"] == "sk"
        for bad in ("hello", "cashuBnotatoken"):
            async with http.get(api + "/keys", params={"q": bad}, headers=admin) as r:
                assert r.status == 400 and (await r.json())["error"]["details"]["param"] == "q"
        async with http.get(api + "/keys", params={"q": "sk-" + "0" * 32}, headers=admin) as r:
            assert (await r.json())["keys"] == []
        async with http.get(api + "/keys", params={"limit": 1}, headers=admin) as r:
            page = await r.json()
        assert [k["id"] for k in page["keys"]] == [token_id] and page["next_before"] == token_id
        async with http.get(api + "/keys", params={"before": token_id}, headers=admin) as r:
            assert [k["id"] for k in (await r.json())["keys"]] == [sk_id]
        async with http.get(api + "/keys", params={"limit": 0}, headers=admin) as r:
            assert r.status == 400

        async with http.put(api + f"/keys/{sk_id}/limits", json={"concurrent": 3}, headers=admin) as r:
            assert r.status == 200
        async with http.get(api + f"/keys/{sk_id}", headers=admin) as r:
            detail = await r.json()
        assert detail["limits_override"]["concurrent"] == 3
        kinds = [e["kind"] for e in detail["ledger"]]
        assert kinds[-1] == "credit" and kinds.count("charge") == 3 and kinds.count("reserve") == 4
        assert sum(e["amount_msat"] for e in detail["ledger"] if e["kind"] == "charge") == sum(costs[:3])
        async with http.get(api + "/keys/99999", headers=admin) as r:
            assert r.status == 404

        async with http.get(api + "/requests", params={"key_id": sk_id}, headers=admin) as r:
            reqs = (await r.json())["requests"]
        assert [q["status"] for q in reqs] == ["not charged", "charged", "charged", "charged"]
        assert [q["cost_msat"] for q in reqs] == [0, costs[2], costs[1], costs[0]]
        assert reqs[0]["model"] == "fail-500" and reqs[1]["model"] == "llama-3.1-8b"
        assert reqs[1]["prompt_tokens"] > 0 and reqs[1]["completion_tokens"] > 0
        assert all(a["id"] > b["id"] for a, b in itertools.pairwise(reqs))
        async with http.get(api + "/requests", params={"model": "gpt-4o-mini"}, headers=admin) as r:
            by_model = (await r.json())["requests"]
        assert [q["cost_msat"] for q in by_model] == [costs[3], costs[1], costs[0]]
        async with http.get(api + "/requests", params={"limit": 2}, headers=admin) as r:
            first = await r.json()
        async with http.get(api + "/requests", params={"before": first["next_before"]}, headers=admin) as r:
            rest = (await r.json())["requests"]
        assert len(first["requests"]) + len(rest) == 5

        async with http.get(api + "/overview", params={"hours": 24}, headers=admin) as r:
            overview = await r.json()
        assert len(overview["hours"]) == 24
        assert sum(h["revenue_msat"] for h in overview["hours"]) == sum(costs)
        assert sum(h["requests"] for h in overview["hours"]) == 5
        assert overview["hours"][-1]["revenue_msat"] == sum(costs)  # all in the current hour
        assert sum(h["paid_in_msat"] for h in overview["hours"]) == 400_000  # the two tokens redeemed
        assert sum(h["refunded_msat"] for h in overview["hours"]) == 0
        models = {m["model"]: m for m in overview["models"]}
        assert models["gpt-4o-mini"]["revenue_msat"] == costs[0] + costs[1] + costs[3]
        assert models["gpt-4o-mini"]["requests"] == 3 and models["fail-500"]["not_charged"] == 1
        assert models["llama-3.1-8b"]["tokens"] == reqs[1]["prompt_tokens"] + reqs[1]["completion_tokens"]
        async with http.get(api + "/books", headers=admin) as r:
            [book] = (await r.json())["books"]
        [entry] = overview["books"]
        assert entry["wallet_msat"] == book["wallet_msat"] == 400_000
        assert entry["liabilities_msat"] == book["owed_msat"] == 400_000 - sum(costs)
        assert entry["withdrawable"] == book["surplus_msat"] // 1000

        async with http.get(api + "/mints", headers=admin) as r:
            [m] = (await r.json())["mints"]
        assert m["url"] == mint_url and m["primary"] and m["up"] is True
        assert m["exposure_msat"] == 400_000 and m["units"][0]["unit"] == "sat"

        async with http.post(node.v1 + "/balance/refund", headers={"Authorization": f"Bearer {sk}"}) as r:
            assert r.status == 200
            refunded = (await r.json())["msats"]
        async with http.get(api + "/overview", headers=admin) as r:
            hours = (await r.json())["hours"]
        assert refunded > 0 and hours[-1]["refunded_msat"] == refunded


async def test_keys_and_providers_from_the_command_line(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, CATALOGUE_SYNC_SECONDS="1") as node,
        aiohttp.ClientSession() as http,
    ):
        env = {
            **os.environ,
            **node_env(mint_url, fake_upstream.url, node.settings.database_url, tmp_path / "pricing.toml"),
            "CATALOGUE_SYNC_SECONDS": "1",
            "SECOND_KEY": "sk-second-provider-9999",
        }
        token = await wallet.asend(mint_url, 50)
        async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
            sk = (await r.json())["api_key"]
        key_id = await node.app[NODE].auth.key_id(sk)
        listed = await cli(env, "keys", "list")
        assert [k["id"] for k in listed] == [key_id] and listed[0]["balance_msat"] == 50_000
        found = await cli(env, "keys", "search", "-", stdin=sk + "\n")
        assert [k["id"] for k in found] == [key_id]
        shown = await cli(env, "keys", "show", str(key_id))
        assert shown["id"] == key_id and shown["ledger"][0]["kind"] == "credit"
        assert sk not in orjson.dumps([listed, found, shown]).decode()
        assert "not a valid" in await cli(env, "keys", "search", "cashuBxyz", code=1)

        added = await cli(
            env,
            "providers",
            "add",
            "--name",
            "second",
            "--base-url",
            fake_upstream.url,
            "--api-key-env",
            "SECOND_KEY",
            "--fee",
            "0.2",
            "--models",
            "gpt-4o-mini",
        )
        assert added["api_key_last4"] == "9999" and added["fee"] == "0.2" and added["enabled"] is True
        providers = await cli(env, "providers", "list")
        assert [p["name"] for p in providers] == ["upstream", "second"]
        assert "sk-second-provider-9999" not in orjson.dumps(providers).decode()

        async def names_in_rotation() -> list[str]:
            return [p.name for p in node.app[NODE].providers]

        deadline = time.monotonic() + 3
        while await names_in_rotation() != ["upstream", "second"]:  # the running node's sync job
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert (await cli(env, "providers", "disable", "--name", "second"))["disabled"] is True
        deadline = time.monotonic() + 3
        while await names_in_rotation() != ["upstream"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert (await cli(env, "providers", "enable", "--id", str(added["id"])))["enabled"] is True
        assert "environment or PROVIDERS_FILE" in await cli(
            env, "providers", "remove", "--name", "upstream", code=1
        )
        assert (await cli(env, "providers", "remove", "--id", str(added["id"])))["removed"] is True
        assert [p["name"] for p in await cli(env, "providers", "list")] == ["upstream"]
        assert "base_url" in await cli(env, "providers", "add", "--name", "x", code=1)
