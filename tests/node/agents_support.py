"""Helpers of tests/node/test_agents.py: costs at the prices /v1/models advertises (by the rule in
tests/pricing_oracle.py), requests sent as exact bytes, a fake upstream of a test's own, and Claude Code
installed with npm and run on loopback."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict

from routstr.devtools.fake_upstream import STATE, start_fake_upstream
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from tests.conftest import UPSTREAM_KEY, NodeHandle, Upstream
from tests.pricing_oracle import advertised as advertised
from tests.pricing_oracle import from_listing
from tests.pricing_oracle import msat_prices as msat_prices

LOWERED = "X-Routstr-Max-Tokens-Lowered"
MIN_FITTED = 1024  # MIN_FITTED_MAX_TOKENS's default
CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.197"
CLAUDE_TIMEOUT_S = 240  # one `claude -p` run (a few seconds on loopback)
NPM_DIR = Path(os.environ.get("ROUTSTR_TEST_NPM_DIR", str(Path.home() / ".cache" / "routstr-test-npm")))


def cost(entry: dict[str, Any], prompt: int, completion: int) -> int:
    """What a usage costs at a ``/v1/models`` entry's price (``tests/pricing_oracle.py``)."""
    return from_listing(entry).cost(prompt, completion)


def fitted(entry: dict[str, Any], balance: int, body_bytes: int, generations: int = 1) -> int:
    """The output limit per generation a balance reserves at a ``/v1/models`` entry's price."""
    return from_listing(entry).fitted(balance, body_bytes, generations)


def reservation(entry: dict[str, Any], body_bytes: int, output_tokens: int) -> int:
    """What the node holds for a body of ``body_bytes`` and that many output tokens."""
    return from_listing(entry).reservation(body_bytes, output_tokens)


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


async def balance_info(http: aiohttp.ClientSession, v1: str, key: str) -> dict[str, Any]:
    async with http.get(v1 + "/balance/info", headers={"Authorization": f"Bearer {key}"}) as r:
        assert r.status == 200
        info: dict[str, Any] = await r.json()
        return info


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


def claude_code_node(
    tmp_path: Path, upstream_url: str, prompt_sats: int, completion_sats: int
) -> dict[str, str]:
    """A node's env for Claude Code: an OpenAI-type provider (the node translates Claude Code's Messages
    to chat completions; the fake's Anthropic route refuses the mid-conversation "system" messages
    Claude Code now sends), its ids aliased by ``claude-*``, and claude-haiku-4-5 at the given prices."""
    pricing = tmp_path / "agents-pricing.toml"
    pricing.write_text(
        "[default]\nprompt_sats_per_mtok = 1000\ncompletion_sats_per_mtok = 3000\n\n"
        f'[models."claude-haiku-4-5"]\nprompt_sats_per_mtok = {prompt_sats}\n'
        f"completion_sats_per_mtok = {completion_sats}\n"
    )
    providers = tmp_path / "providers.toml"
    providers.write_text(
        f'[[providers]]\nname = "openai"\nbase_url = "{upstream_url}"\napi_key = "{UPSTREAM_KEY}"\n\n'
        '[aliases]\n"claude-*" = "claude-haiku-4-5"\n'
    )
    return {"UPSTREAM_BASE_URL": "", "PROVIDERS_FILE": str(providers), "PRICING_FILE": str(pricing)}


async def run_claude(claude: list[str], base_url: str, key: str, tmp_path: Path) -> tuple[int, str, str]:
    """``claude -p`` with ``key`` as its auth token against the node: (exit code, stdout, stderr). Its
    home and working directory are the test's; telemetry, updates and other traffic are off, so its
    only requests are to the node on loopback."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_AUTH_TOKEN": key,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        *claude,
        "-p",
        "Say hello",
        cwd=work,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLAUDE_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@dataclass
class Exchange:
    """One request a client sent through ``recording_proxy`` and the node's answer to it."""

    method: str
    path: str
    body: bytes
    status: int
    headers: CIMultiDict[str]
    answer: bytes  # an error's body (decoded); a successful answer is streamed through, not kept


@asynccontextmanager
async def recording_proxy(target: str) -> AsyncIterator[tuple[str, list[Exchange]]]:
    """A loopback pass-through to ``target`` that records every exchange, so a test sees exactly what
    a client (Claude Code) sent and what the node answered it: the body's bytes (the node's prompt
    bound), the headers, and the error body of a refusal."""
    seen: list[Exchange] = []
    hop = {"host", "content-length", "transfer-encoding", "connection"}
    async with aiohttp.ClientSession(auto_decompress=False) as session:

        async def relay(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
            async with session.request(
                request.method, target + request.path_qs, data=body, headers=headers, allow_redirects=False
            ) as r:
                out = web.StreamResponse(
                    status=r.status, headers={k: v for k, v in r.headers.items() if k.lower() not in hop}
                )
                await out.prepare(request)
                kept = bytearray()
                async for chunk in r.content.iter_any():
                    if r.status >= 400:
                        kept += chunk
                    await out.write(chunk)
                await out.write_eof()
            if kept and r.headers.get("Content-Encoding") == "gzip":
                kept = bytearray(gzip.decompress(kept))
            seen.append(
                Exchange(request.method, request.path, body, r.status, CIMultiDict(r.headers), bytes(kept))
            )
            return out

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", relay)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
        finally:
            await runner.cleanup()
