"""Where a BTC/USD price comes from: public ticker URLs and the parsers of their JSON answers.

Each parser is a pure function of the decoded body, so it is tested on sample answers without any
network. A parser raises ``ValueError`` on any shape it does not recognise: the feed then drops that
source for this round instead of charging at a misread number. Sources are configured by an env-style
string (see :func:`parse_sources`); the name picks the parser, the URL is free (a mirror, a proxy, the
fake price server in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_SOURCES",
    "KNOWN_URLS",
    "PARSERS",
    "Parser",
    "Source",
    "parse_binance",
    "parse_bitstamp",
    "parse_blockchain",
    "parse_coinbase",
    "parse_kraken",
    "parse_sources",
    "sources_from_env",
    "to_decimal",
]

Parser = Callable[[Any], Decimal]


def to_decimal(value: Any, what: str) -> Decimal:
    """A finite Decimal from a JSON string or number; floats go through ``repr`` so no binary noise."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"{what} is {type(value).__name__}, not a number")
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{what}={value!r} is not a number") from None
    if not d.is_finite():
        raise ValueError(f"{what}={value!r} is not a finite number")
    return d


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} is {type(value).__name__}, not an object")
    return value


def _field(obj: Mapping[str, Any], key: str, what: str) -> Any:
    if key not in obj:
        raise ValueError(f"{what} has no {key!r}")
    return obj[key]


def parse_coinbase(body: Any) -> Decimal:
    """Coinbase spot: ``{"data": {"amount": "97000.12", "base": "BTC", "currency": "USD"}}``."""
    data = _obj(_field(_obj(body, "coinbase body"), "data", "coinbase body"), "coinbase data")
    # a spot URL for another pair answers the same shape: check the pair when it is given
    if data.get("base", "BTC") != "BTC" or data.get("currency", "USD") != "USD":
        raise ValueError(f"coinbase answered {data.get('base')}-{data.get('currency')}, not BTC-USD")
    return to_decimal(_field(data, "amount", "coinbase data"), "coinbase amount")


_KRAKEN_PAIRS = ("XXBTZUSD", "XBTUSD")


def parse_kraken(body: Any) -> Decimal:
    """Kraken ticker: ``{"error": [], "result": {"XXBTZUSD": {"c": ["97000.1", "0.1"], ...}}}``.

    ``c`` is the last trade closed: [price, lot volume]. Kraken may name the pair by its alt name, so a
    result with a single pair is taken whatever its key.
    """
    obj = _obj(body, "kraken body")
    errors = obj.get("error") or []
    if errors:
        raise ValueError(f"kraken answered errors {errors!r}"[:200])
    result = _obj(_field(obj, "result", "kraken body"), "kraken result")
    key = next((k for k in _KRAKEN_PAIRS if k in result), None)
    if key is None:
        if len(result) != 1:
            raise ValueError(f"kraken result has no BTC/USD pair (keys {sorted(result)[:5]})")
        key = next(iter(result))
    closed = _field(_obj(result[key], f"kraken {key}"), "c", f"kraken {key}")
    if not isinstance(closed, list) or not closed:
        raise ValueError(f"kraken {key}.c is not a non-empty list")
    return to_decimal(closed[0], f"kraken {key}.c[0]")


def parse_bitstamp(body: Any) -> Decimal:
    """Bitstamp v2 ticker: ``{"last": "97000", "bid": ..., "ask": ..., ...}`` (strings)."""
    return to_decimal(_field(_obj(body, "bitstamp body"), "last", "bitstamp body"), "bitstamp last")


_BINANCE_SYMBOLS = ("BTCUSDT", "BTCUSD", "BTCUSDC")


def parse_binance(body: Any) -> Decimal:
    """Binance ticker price: ``{"symbol": "BTCUSDT", "price": "97000.00"}``.

    Binance quotes in USD stablecoins (USDT by default), close to but not exactly USD: it is not one of
    the default sources, and a median of several sources absorbs the small spread.
    """
    obj = _obj(body, "binance body")
    symbol = obj.get("symbol", "BTCUSDT")
    if symbol not in _BINANCE_SYMBOLS:
        raise ValueError(f"binance answered symbol {symbol!r}, not one of {', '.join(_BINANCE_SYMBOLS)}")
    return to_decimal(_field(obj, "price", "binance body"), "binance price")


def parse_blockchain(body: Any) -> Decimal:
    """Blockchain.com ticker: ``{"USD": {"15m": 97000.0, "last": 97000.0, ...}, "EUR": {...}, ...}``.

    Its prices are JSON numbers: the feed decodes them straight to Decimal, never through float.
    """
    usd = _obj(_field(_obj(body, "blockchain body"), "USD", "blockchain body"), "blockchain USD")
    return to_decimal(_field(usd, "last", "blockchain USD"), "blockchain USD.last")


PARSERS: dict[str, Parser] = {
    "coinbase": parse_coinbase,
    "kraken": parse_kraken,
    "bitstamp": parse_bitstamp,
    "binance": parse_binance,
    "blockchain": parse_blockchain,
}

KNOWN_URLS: dict[str, str] = {
    "coinbase": "https://api.coinbase.com/v2/prices/BTC-USD/spot",
    "kraken": "https://api.kraken.com/0/public/Ticker?pair=XBTUSD",
    "bitstamp": "https://www.bitstamp.net/api/v2/ticker/btcusd/",
    "binance": "https://api.binance.com/api/v3/ticker/price?symbol=BTCUSDT",
    "blockchain": "https://blockchain.info/ticker",
}


@dataclass(frozen=True, slots=True)
class Source:
    """One price source: a name (for logs and diagnostics, never the URL), where to ask, how to read it."""

    name: str
    url: str
    parse: Parser


# Real USD quotes only (no stablecoin pair). Production only: tests point at the fake price server.
DEFAULT_SOURCES: tuple[Source, ...] = tuple(
    Source(name, KNOWN_URLS[name], PARSERS[name]) for name in ("coinbase", "kraken", "bitstamp", "blockchain")
)


def _check_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"price source {name!r}: the URL must be http(s)://host/..., got {url[:60]!r}")
    return url


def parse_sources(spec: str) -> tuple[Source, ...]:
    """Sources from ``name=url,name=url`` (or a bare ``name`` for its public URL), e.g.

    ``coinbase=https://api.coinbase.com/v2/prices/BTC-USD/spot,kraken,bitstamp``.

    Items are separated by commas (or newlines) and split at the first ``=``, so URLs may carry query
    strings. Known names: coinbase, kraken, bitstamp, binance, blockchain. An unknown or repeated name,
    a non-http(s) URL or an empty list is a ``ValueError`` saying which item is wrong.
    """
    sources: list[Source] = []
    seen: set[str] = set()
    for raw in spec.replace("\n", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        name, url = name.strip().lower(), url.strip()
        if name not in PARSERS:
            raise ValueError(
                f"unknown price source {name!r} in {item[:80]!r}; known: {', '.join(sorted(PARSERS))}"
            )
        if name in seen:
            raise ValueError(f"price source {name!r} is listed twice")
        if sep and not url:
            raise ValueError(
                f"price source {name!r} has an empty URL (write {name}=https://... or just {name})"
            )
        seen.add(name)
        sources.append(Source(name, _check_url(name, url) if sep else KNOWN_URLS[name], PARSERS[name]))
    if not sources:
        raise ValueError(
            "no price source given; write name=url pairs separated by commas, e.g. coinbase=https://..."
        )
    return tuple(sources)


def sources_from_env(value: str | None) -> tuple[Source, ...]:
    """The configured sources, or :data:`DEFAULT_SOURCES` when the variable is unset or blank."""
    if value is None or not value.strip():
        return DEFAULT_SOURCES
    return parse_sources(value)
