"""Helpers of tests/node/test_agents.py: prices as /v1/models advertises them, requests sent as exact
bytes, a fake upstream of a test's own, and Claude Code installed with npm."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from routstr.api.state import NODE
from routstr.devtools.fake_upstream import STATE, start_fake_upstream
from routstr.devtools.test_wallet import TestWallet
from tests.conftest import UPSTREAM_KEY, NodeHandle, Upstream

LOWERED = "X-Routstr-Max-Tokens-Lowered"
MTOK = 1_000_000
MIN_FITTED = 1024  # MIN_FITTED_MAX_TOKENS's default
CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.197"
NPM_DIR = Path(os.environ.get("ROUTSTR_TEST_NPM_DIR", str(Path.home() / ".cache" / "routstr-test-npm")))


async def advertised(http: aiohttp.ClientSession, v1: str) -> dict[str, dict[str, Any]]:
    async with http.get(v1 + "/models") as r:
        assert r.status == 200
        return {m["id"]: m for m in (await r.json())["data"]}


def msat_prices(entry: dict[str, Any]) -> tuple[int, int, int]:
    """(prompt msat per Mtok, completion msat per Mtok, msat per request) from ``sats_pricing``,
    which gives sats per token and per request."""
    sp = entry["sats_pricing"]
    per_mtok = Decimal(10) ** 9  # sats per token -> msat per million tokens
    return (
        int(Decimal(str(sp["prompt"])) * per_mtok),
        int(Decimal(str(sp["completion"])) * per_mtok),
        int(Decimal(str(sp["request"])) * 1000),
    )


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def cost(entry: dict[str, Any], prompt: int, completion: int) -> int:
    p, c, r = msat_prices(entry)
    return ceil_div(prompt * p + completion * c, MTOK) + r


def fitted(entry: dict[str, Any], balance: int, body_bytes: int, generations: int = 1) -> int:
    """The output limit per generation a balance reserves: the largest n with
    ceil((bytes x prompt + generations x n x completion) / 1e6) + request <= balance."""
    p, c, r = msat_prices(entry)
    return ((balance - r) * MTOK - body_bytes * p) // c // generations


def reservation(entry: dict[str, Any], body_bytes: int, output_tokens: int) -> int:
    p, c, r = msat_prices(entry)
    return ceil_div(body_bytes * p + output_tokens * c, MTOK) + r


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], key: str, **headers: str
) -> tuple[aiohttp.ClientResponse, dict[str, Any], bytes]:
    """POST the body as exact bytes (their length is the node's prompt bound)."""
    raw = orjson.dumps(body)
    hdrs = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers}
    async with http.post(url, data=raw, headers=hdrs) as r:
        data = await r.read()
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            answer = {}
        return r, answer if isinstance(answer, dict) else {}, raw


async def funded_key(node: NodeHandle, wallet: TestWallet, mint_url: str, sats: int) -> tuple[str, int]:
    token = await wallet.asend(mint_url, sats)
    key_id = await node.app[NODE].auth.key_id(token)
    assert (await node.key_row(key_id)).balance_msat == sats * 1000
    return token, key_id


@asynccontextmanager
async def own_upstream() -> AsyncIterator[Upstream]:
    """A fake upstream of the test's own, so its counters and last body are this test's."""
    runner, url = await start_fake_upstream(expected_api_key=UPSTREAM_KEY, timeout_s=3)
    try:
        yield Upstream(url, runner.app[STATE])
    finally:
        await runner.cleanup()


def npm_install_claude_code() -> list[str]:
    """The command that runs Claude Code, installed once from the npm registry into a cache outside
    the repository. Its postinstall puts the native binary in place; where install scripts did not
    run, the package's own fallback launcher is used."""
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail("npm is needed to install Claude Code (apt-get install nodejs npm)")
        pytest.skip("npm is not installed (CI installs it)")
    package = NPM_DIR / "node_modules" / "@anthropic-ai" / "claude-code" / "package.json"
    wanted = CLAUDE_CODE.rsplit("@", 1)[1]
    if not package.is_file() or orjson.loads(package.read_bytes()).get("version") != wanted:
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        if not (NPM_DIR / "package.json").is_file():
            (NPM_DIR / "package.json").write_text('{"name": "routstr-test-npm", "private": true}\n')
        done = subprocess.run(
            [npm, "install", "--prefix", str(NPM_DIR), "--no-audit", "--no-fund", CLAUDE_CODE],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    binary = str(NPM_DIR / "node_modules" / ".bin" / "claude")
    if subprocess.run([binary, "--version"], capture_output=True, timeout=60).returncode == 0:
        return [binary]
    return ["node", str(package.parent / "cli-wrapper.cjs")]
