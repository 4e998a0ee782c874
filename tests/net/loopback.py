"""Loopback servers for the outbound-policy tests: a port that records every connection made to it,
and a LNURL-pay "first hop" whose callback points wherever a test says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

from aiohttp import web

# what the recording port answers a node that does connect: a usable-looking LNURL answer
_BODY = (
    b'{"tag": "payRequest", "callback": "http://127.0.0.1:1/cb", "minSendable": 1000, '
    b'"maxSendable": 10000000}'
)
_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_BODY)}\r\n\r\n".encode()
    + _BODY
)


@dataclass
class Listener:
    """A loopback port that counts the connections made to it (an internal service, for the node)."""

    port: int = 0
    connections: int = 0


@asynccontextmanager
async def listening() -> AsyncIterator[Listener]:
    rec = Listener()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rec.connections += 1
        with suppress(OSError, asyncio.IncompleteReadError):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            writer.write(_ANSWER)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    rec.port = int(server.sockets[0].getsockname()[1])
    try:
        yield rec
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class FirstHop:
    """A LNURL-pay server on 127.0.0.1 (a test lets the node call it): ``<user>@127.0.0.1:<port>``
    answers with the callback ``callbacks[user]``; ``asked`` lists the users asked for."""

    port: int = 0
    callbacks: dict[str, str] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def address(self, user: str) -> str:
        return f"{user}@127.0.0.1:{self.port}"


@asynccontextmanager
async def first_hop() -> AsyncIterator[FirstHop]:
    hop = FirstHop()

    async def well_known(request: web.Request) -> web.Response:
        user = request.match_info["user"]
        hop.asked.append(user)
        return web.json_response(
            {
                "tag": "payRequest",
                "callback": hop.callbacks[user],
                "minSendable": 1000,
                "maxSendable": 10**9,
                "metadata": "[]",
            }
        )

    app = web.Application()
    app.router.add_get("/.well-known/lnurlp/{user}", well_known)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hop.port = int(runner.addresses[0][1])
    try:
        yield hop
    finally:
        await runner.cleanup()
