"""A provider's client knows when requests use its connections (``Upstream.in_flight``), and a replaced
provider's client is closed only once none does: on loopback, with a stream held open mid-way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from routstr.core.errors import UpstreamError
from routstr.core.pricing import PriceBook
from routstr.limits import LimitPolicy
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from routstr.upstream.catalogue import Catalogue
from routstr.upstream.client import Upstream
from routstr.upstream.managed import ManagedCatalogue, effective
from routstr.upstream.providers import Provider
from routstr.upstream.runtime import Runtime, RuntimeHolder
from routstr.upstream.spec import ProviderSpec


@dataclass
class Gates:
    """The server holds each answer until the test opens its gate."""

    asked: asyncio.Event = field(default_factory=asyncio.Event)  # a request reached the server
    headers: asyncio.Event = field(default_factory=asyncio.Event)  # /slow may answer
    finish: asyncio.Event = field(default_factory=asyncio.Event)  # /stream may end


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Gates]]:
    gates = Gates()

    async def slow(request: web.Request) -> web.Response:
        gates.asked.set()
        await gates.headers.wait()
        return web.json_response({"ok": True})

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: first\n\n")
        await gates.finish.wait()
        await resp.write(b"data: last\n\n")
        await resp.write_eof()
        return resp

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    app = web.Application()
    app.router.add_post("/v1/slow", slow)
    app.router.add_post("/v1/stream", stream)
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/v1", gates
    gates.headers.set(), gates.finish.set()  # a failed test must not leave handlers waiting
    await runner.cleanup()


def client(base_url: str) -> Upstream:
    return Upstream(base_url, "", aiohttp.ClientSession(), connect_timeout_s=2.0, read_timeout_s=5.0)


async def test_in_flight_counts_requests_until_their_connection_is_given_back(
    server: tuple[str, Gates],
) -> None:
    url, gates = server
    up = client(url)
    try:
        assert up.in_flight == 0
        waiting = asyncio.create_task(up.post("/slow", {}, {}))
        await asyncio.wait_for(gates.asked.wait(), 5)
        assert up.in_flight == 1  # sent, no answer yet
        gates.headers.set()
        resp = await waiting
        assert await resp.json() == {"ok": True}
        assert up.in_flight == 0  # read to the end: its connection is back in the pool
        resp.release()

        streaming = await up.post("/stream", {}, {})
        assert await streaming.content.readline() == b"data: first\n"
        assert up.in_flight == 1  # a stream being relayed
        streaming.release()  # a client that went away mid-stream
        assert up.in_flight == 0

        gates.finish.set()
        whole = await up.post("/stream", {}, {})
        assert await whole.read() == b"data: first\n\ndata: last\n\n"
        assert up.in_flight == 0
        whole.release()

        assert await up.get_json("/models") == {"data": [{"id": "m"}]}
        assert up.in_flight == 0
    finally:
        await up.session.close()

    dead = client("http://127.0.0.1:9/v1")
    try:
        with pytest.raises(UpstreamError):
            await dead.post("/slow", {}, {})
        assert dead.in_flight == 0  # a request that never connected holds nothing
    finally:
        await dead.session.close()


async def test_a_replaced_provider_is_closed_only_after_its_stream_ends(
    server: tuple[str, Gates], tmp_path: Path
) -> None:
    url, gates = server
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'node.sqlite3'}"
    await upgrade(db_url)
    db = Database(db_url)
    kept_spec, gone_spec = ProviderSpec("files", url), ProviderSpec("gone", url, api_key="sk-old")
    kept, gone = client(url), client(url)
    providers = (Provider(kept_spec, kept), Provider(gone_spec, gone))
    offer = effective([kept_spec, gone_spec], {}, PriceBook(), [], [])
    runtime = RuntimeHolder(Runtime(1, providers, offer, LimitPolicy()))
    catalogue = Catalogue(PriceBook(), lambda: Decimal(100_000), default_max_output=1000, runtime=runtime)

    def build(spec: ProviderSpec) -> Provider:
        return Provider(spec, client(url))

    managed = ManagedCatalogue(db, b"s" * 32, catalogue, build, [kept_spec], {}, PriceBook())
    managed.retire_grace_s, managed.reap_every_s = 0.0, 0.05  # close as soon as nothing uses it
    try:
        resp = await gone.post("/stream", {}, {})
        assert await resp.content.readline() == b"data: first\n"
        await managed.reload()  # the database has no "gone": it is replaced (here: removed)
        now = runtime.current.providers
        assert [p.spec.name for p in now] == ["files"] and now[0].client is kept
        await asyncio.sleep(0.4)  # several reaper rounds while the stream holds its connection
        assert not gone.session.closed
        gates.finish.set()
        assert [line async for line in resp.content] == [b"\n", b"data: last\n", b"\n"]
        resp.release()
        deadline = time.monotonic() + 3
        while not gone.session.closed:
            assert time.monotonic() < deadline, "the replaced client was never closed"
            await asyncio.sleep(0.02)
        assert not kept.session.closed
    finally:
        await managed.close()
        await kept.session.close()
        await gone.session.close()
        await db.close()
