"""A fake of the public BTC/USD price APIs, so the rate feed is tested without the network.

Serves each source's answer shape at its own path (``/coinbase``, ``/kraken``, ``/bitstamp``,
``/binance``, ``/blockchain``) at a settable price, with a failure mode per source:

=============  =====================================================================================
``ok``         the real shape with the current price (``prices[name]`` if set, else ``price``)
``down``       503 with a small error body
``slow``       waits ``slow_s`` (default 30 s, longer than any sane timeout), then answers normally
``garbage``    valid JSON of the wrong shape
``badjson``    200 with a body that is not JSON
=============  =====================================================================================

Tests drive ``app[STATE]`` (``state.price = Decimal(...)``, ``state.mode["kraken"] = "down"``) and read
its counters; a separate process is driven by ``POST /_fake/set`` and read by ``GET /_fake/stats``.
Run standalone: ``python -m routstr.devtools.fake_prices --port 8002``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, cast, get_args

import orjson
from aiohttp import web

__all__ = [
    "MODES",
    "NAMES",
    "STATE",
    "FakePricesState",
    "Mode",
    "build_app",
    "sources_spec",
    "start_fake_prices",
]

Mode = Literal["ok", "down", "slow", "garbage", "badjson"]
MODES: tuple[str, ...] = get_args(Mode)
NAMES = ("coinbase", "kraken", "bitstamp", "binance", "blockchain")
_JSON = "application/json"


@dataclass
class FakePricesState:
    """The price, per-source overrides and modes, and request counters of one fake price server."""

    price: Decimal = Decimal("97000.12")
    prices: dict[str, Decimal] = field(default_factory=dict)  # per-source price, wins over `price`
    mode: dict[str, Mode] = field(default_factory=dict)  # a missing name is "ok"
    slow_s: float = 30.0
    requests_total: int = 0
    hits: Counter[str] = field(default_factory=Counter)  # source name -> requests

    def price_for(self, name: str) -> Decimal:
        return self.prices.get(name, self.price)

    def reset(self) -> None:
        """Back to one price for all, every source ok, counters zeroed."""
        self.price, self.slow_s = Decimal("97000.12"), 30.0
        self.prices.clear()
        self.mode.clear()
        self.requests_total = 0
        self.hits.clear()

    def snapshot(self) -> dict[str, Any]:
        return {
            "price": str(self.price),
            "prices": {k: str(v) for k, v in self.prices.items()},
            "mode": dict(self.mode),
            "slow_s": self.slow_s,
            "requests_total": self.requests_total,
            "hits": dict(self.hits),
        }


STATE = web.AppKey("fake_prices_state", FakePricesState)


def _body(name: str, p: Decimal) -> bytes:
    """The source's real answer shape. Prices are written as text, never through a float."""
    s = str(p)
    if name == "coinbase":
        return orjson.dumps({"data": {"amount": s, "base": "BTC", "currency": "USD"}})
    if name == "kraken":
        pair = {"a": [s, "1", "1.000"], "b": [s, "2", "2.000"], "c": [s, "0.00100000"], "v": ["1", "2"]}
        return orjson.dumps({"error": [], "result": {"XXBTZUSD": pair}})
    if name == "bitstamp":
        return orjson.dumps({"timestamp": "1700000000", "last": s, "bid": s, "ask": s, "vwap": s})
    if name == "binance":
        return orjson.dumps({"symbol": "BTCUSDT", "price": s})
    # blockchain.info: JSON numbers, one entry per currency
    usd = f'{{"15m":{s},"last":{s},"buy":{s},"sell":{s},"symbol":"$"}}'
    return f'{{"EUR":{{"15m":1,"last":1,"buy":1,"sell":1,"symbol":"\\u20ac"}},"USD":{usd}}}'.encode()


_GARBAGE: dict[str, Any] = {
    "coinbase": {"errors": [{"id": "not_found", "message": "Invalid currency"}]},
    "kraken": {"error": ["EQuery:Unknown asset pair"]},
    "bitstamp": {"last": "n/a"},
    "binance": {"code": -1121, "msg": "Invalid symbol."},
    "blockchain": {"USD": {"last": None}},
}


async def price(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name = request.match_info["name"]
    if name not in NAMES:
        raise web.HTTPNotFound()
    state.requests_total += 1
    state.hits[name] += 1
    mode = state.mode.get(name, "ok")
    if mode == "down":
        return web.Response(status=503, body=b'{"message":"service unavailable"}', content_type=_JSON)
    if mode == "garbage":
        return web.Response(body=orjson.dumps(_GARBAGE[name]), content_type=_JSON)
    if mode == "badjson":
        return web.Response(body=b"<html>502 Bad Gateway</html>", content_type=_JSON)
    if mode == "slow":
        await asyncio.sleep(state.slow_s)  # cancelled when the client gives up (handler_cancellation)
    return web.Response(body=_body(name, state.price_for(name)), content_type=_JSON)


async def stats(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(request.app[STATE].snapshot()), content_type=_JSON)


async def set_state(request: web.Request) -> web.Response:
    """``{"price": "...", "prices": {name: "..."}, "mode": {name: mode}, "slow_s": n, "reset": true}``."""
    state = request.app[STATE]
    try:
        body = orjson.loads(await request.read())
        if not isinstance(body, dict):
            raise ValueError("body must be an object")
        if body.get("reset"):
            state.reset()
        if "price" in body:
            state.price = Decimal(str(body["price"]))
        for name, value in dict(body.get("prices") or {}).items():
            state.prices[_known(name)] = Decimal(str(value))
        for name, mode in dict(body.get("mode") or {}).items():
            if mode not in MODES:
                raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
            state.mode[_known(name)] = cast(Mode, mode)
        if "slow_s" in body:
            state.slow_s = float(body["slow_s"])
    except (ValueError, TypeError, InvalidOperation) as e:
        return web.Response(status=400, body=orjson.dumps({"error": str(e)}), content_type=_JSON)
    return web.Response(body=orjson.dumps(state.snapshot()), content_type=_JSON)


def _known(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"unknown source {name!r}; known: {', '.join(NAMES)}")
    return name


def build_app(state: FakePricesState | None = None) -> web.Application:
    app = web.Application()
    app[STATE] = state or FakePricesState()
    app.router.add_get("/_fake/stats", stats)
    app.router.add_post("/_fake/set", set_state)
    app.router.add_get("/{name}", price)
    return app


def sources_spec(base_url: str, names: tuple[str, ...] = ("coinbase", "kraken", "bitstamp")) -> str:
    """The env-style source list pointing at this server, e.g. ``coinbase=http://127.0.0.1:PORT/coinbase,...``."""
    return ",".join(f"{n}={base_url}/{_known(n)}" for n in names)


async def start_fake_prices(
    host: str = "127.0.0.1", port: int = 0, state: FakePricesState | None = None
) -> tuple[web.AppRunner, str]:
    """Serve a fake price server; returns the runner (``await runner.cleanup()`` to stop,
    ``runner.app[STATE]`` to drive it) and the base URL ``http://host:port`` (sources at ``/<name>``)."""
    runner = web.AppRunner(build_app(state), access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, f"http://{host}:{runner.addresses[0][1]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake BTC/USD price APIs for routstr tests and demos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--price", default="97000.12", help="USD per BTC served by every source")
    args = parser.parse_args(argv)
    app = build_app(FakePricesState(price=Decimal(args.price)))
    base = f"http://{args.host}:{args.port}"
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        handler_cancellation=True,
        print=lambda _: print(f"fake prices on {base}; sources: {sources_spec(base, NAMES)}", flush=True),
    )


if __name__ == "__main__":
    main()
