"""Fixtures of the compat tests: a real ``routstr serve`` per storage backend (shared by the module's
tests, each of which ends with ``routstr audit``), a fake upstream of the module's own, and cashu-ts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from routstr.devtools.fake_upstream import STATE, build_app, start_fake_upstream
from tests.compat.cashu_ts import CashuTs, cashu_ts_dir
from tests.compat.sdk import Provider
from tests.conftest import PRICING, UPSTREAM_KEY, Upstream, _backends, fresh_database, node_env
from tests.node.node_process import NodeProcess, assert_audit_passes

HOLD_FIELD = "compat_hold_ms"  # a body field: the upstream waits this long before it answers
# a bolt11 no mint of the tests issued, signed with a throwaway key by the ``bolt11`` package in the
# Nutshell venv: the test mint's FakeWallet pays any invoice (its own would be settled internally)
BOLT11 = """
import os, sys, time
from bolt11 import Bolt11, MilliSatoshi, TagChar, Tags, encode
tags = Tags()
tags.add(TagChar.payment_hash, os.urandom(32).hex())
tags.add(TagChar.payment_secret, os.urandom(32).hex())
tags.add(TagChar.description, "routstr compat test")
msat = MilliSatoshi(int(sys.argv[1]) * 1000)
invoice = Bolt11(currency="bc", amount_msat=msat, date=int(time.time()), tags=tags)
print(encode(invoice, os.urandom(32).hex()))
"""


@web.middleware
async def _hold(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Holds an answer whose body asks for it, so the node's stream headers are not sent before the
    early X-Cashu change is made (they wait for it while the upstream has sent nothing)."""
    if request.method == "POST" and request.content_type == "application/json":
        body = await request.json()  # read once, kept: the handler reads it again
        hold = body.get(HOLD_FIELD) if isinstance(body, dict) else None
        if isinstance(hold, int):
            await asyncio.sleep(hold / 1000)
    return await handler(request)


async def foreign_bolt11(nutshell_python: Path, sats: int) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(nutshell_python), "-c", BOLT11, str(sats), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode().strip()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def compat_upstream() -> AsyncIterator[Upstream]:
    app = build_app(expected_api_key=UPSTREAM_KEY, timeout_s=3)
    app.middlewares.append(_hold)
    runner, url = await start_fake_upstream(app=app)
    yield Upstream(url, runner.app[STATE])
    await runner.cleanup()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cashu_ts() -> AsyncIterator[CashuTs]:
    """cashu-ts from npm (installed once into the test cache), as a worker process."""
    directory = await asyncio.to_thread(cashu_ts_dir)
    wallet = await CashuTs(directory).start()
    yield wallet
    await wallet.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=_backends())
async def serve(
    request: pytest.FixtureRequest,
    mint_url: str,
    compat_upstream: Upstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[NodeProcess]:
    """One ``routstr serve`` process per backend, in front of the test mint and the upstream."""
    tmp: Path = tmp_path_factory.mktemp(f"compat-{request.param}")
    pricing = tmp / "pricing.toml"
    pricing.write_text(PRICING)
    async with fresh_database(request.param, tmp) as db_url:
        env = node_env(mint_url, compat_upstream.url, db_url, pricing, SECRET_KEY="compat")
        node = NodeProcess(env, tmp / "node.log")
        await asyncio.to_thread(node.start)
        try:
            yield node
        finally:
            node.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def provider(serve: NodeProcess) -> AsyncIterator[Provider]:
    """The node as the SDK addresses it; after each test, ``routstr audit`` must pass on its books."""
    async with aiohttp.ClientSession() as http:
        yield Provider(http, serve.url)
    await assert_audit_passes(serve)
