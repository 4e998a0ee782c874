"""The floor of the benchmark: a bare aiohttp relay with nothing but the relaying.

``POST /v1/chat/completions`` is forwarded to ``<upstream>/chat/completions`` through ONE pooled
``aiohttp.ClientSession``; no authentication, no billing, no parsing. A streamed answer is passed
through chunk by chunk as it arrives. Whatever the node does on top of this costs its difference.

    python bench/bare_relay.py --port 8090 --upstream http://127.0.0.1:8001/v1
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    session = request.app[SESSION]
    async with session.post(
        request.app[UPSTREAM] + "/chat/completions",
        data=body,
        headers={"Content-Type": "application/json"},
    ) as up:
        ctype = up.headers.get("Content-Type", "application/json")
        if ctype.startswith("text/event-stream"):
            out = web.StreamResponse(
                status=up.status, headers={"Content-Type": ctype, "Cache-Control": "no-cache"}
            )
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out
        return web.Response(status=up.status, body=await up.read(), headers={"Content-Type": ctype})


def build_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        app[SESSION] = aiohttp.ClientSession(connector=connector)
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", chat_completions)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Bare aiohttp relay: the floor for the routstr benchmark.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--upstream", required=True, help="upstream base URL, e.g. http://127.0.0.1:8001/v1")
    args = parser.parse_args(argv)
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    web.run_app(
        build_app(args.upstream),
        host=args.host,
        port=args.port,
        access_log=None,
        loop=loop,
        print=lambda _: print(f"bare relay on http://{args.host}:{args.port} -> {args.upstream}", flush=True),
    )


if __name__ == "__main__":
    main()
