"""A node whose providers all live in its database (added with ``routstr providers add`` or the admin
API): ``routstr serve`` starts on them, and refuses in one line while there are none."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from routstr.config import NO_PROVIDER
from routstr.devtools.test_wallet import TestWallet
from tests.conftest import PRICING, UPSTREAM_KEY, Upstream, chat_body, fresh_database, node_env
from tests.node.node_process import NodeProcess, routstr_cli

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_serve_runs_on_stored_providers_only(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    pricing = tmp_path / "pricing.toml"
    pricing.write_text(PRICING)
    async with fresh_database(backend, tmp_path) as db_url:
        env = node_env(mint_url, fake_upstream.url, db_url, pricing)
        del env["UPSTREAM_BASE_URL"], env["UPSTREAM_API_KEY"]
        node = NodeProcess(env, tmp_path / "node.log")
        refused = await routstr_cli(node, "serve")
        assert refused.returncode == 2
        assert refused.stderr.strip() == f"routstr: configuration error: {NO_PROVIDER}"

        node.env["ONLY_KEY"] = UPSTREAM_KEY  # read from the environment, never an argument
        added = await routstr_cli(
            node,
            "providers",
            "add",
            "--name",
            "only",
            "--base-url",
            fake_upstream.url,
            "--api-key-env",
            "ONLY_KEY",
        )
        assert added.returncode == 0, added.stderr
        node.start()
        try:
            async with aiohttp.ClientSession() as http:
                token = await wallet.asend(mint_url, 50)
                async with http.post(
                    node.url + "/v1/chat/completions",
                    json=chat_body("hello", max_tokens=10),
                    headers={"Authorization": f"Bearer {token}"},
                ) as r:
                    assert r.status == 200, await r.text()
                    assert int(r.headers["X-Routstr-Cost-Msats"]) > 0
                async with http.get(node.url + "/v1/models") as r:
                    assert "gpt-4o-mini" in {m["id"] for m in (await r.json())["data"]}
        finally:
            node.stop()
