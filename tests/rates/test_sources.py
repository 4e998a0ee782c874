"""The parsers on real-shaped answers and on wrong ones, and the env-style source list."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from routstr.rates.sources import (
    DEFAULT_SOURCES,
    KNOWN_URLS,
    PARSERS,
    parse_binance,
    parse_bitstamp,
    parse_blockchain,
    parse_coinbase,
    parse_kraken,
    parse_sources,
    sources_from_env,
    to_decimal,
)

KRAKEN = {
    "error": [],
    "result": {
        "XXBTZUSD": {
            "a": ["97000.20000", "1", "1.000"],
            "b": ["97000.10000", "2", "2.000"],
            "c": ["97000.10000", "0.00100000"],
            "v": ["1000.1", "2000.2"],
            "p": ["96900.1", "96950.2"],
            "t": [1000, 2000],
            "l": ["96000.0", "95000.0"],
            "h": ["98000.0", "99000.0"],
            "o": "96500.0",
        }
    },
}
BLOCKCHAIN_TEXT = (
    '{"ARS":{"15m":9.1E7,"last":9.1E7,"buy":9.1E7,"sell":9.1E7,"symbol":"ARS"},'
    '"USD":{"15m":97000.01,"last":97000.01,"buy":97000.01,"sell":97000.01,"symbol":"$"}}'
)


def test_coinbase() -> None:
    body = {"data": {"amount": "97000.12", "base": "BTC", "currency": "USD"}}
    assert parse_coinbase(body) == Decimal("97000.12")
    assert parse_coinbase({"data": {"amount": "97000.12"}}) == Decimal("97000.12")


def test_kraken() -> None:
    assert parse_kraken(KRAKEN) == Decimal("97000.1")
    # the pair under its alt name, or under any single key
    assert parse_kraken({"error": [], "result": {"XBTUSD": {"c": ["1.5", "1"]}}}) == Decimal("1.5")
    assert parse_kraken({"result": {"XBT/USD": {"c": ["2", "1"]}}}) == Decimal(2)


def test_bitstamp() -> None:
    body = {"timestamp": "1700000000", "open": "96000", "last": "97000", "bid": "96999", "ask": "97001"}
    assert parse_bitstamp(body) == Decimal(97000)


def test_binance() -> None:
    assert parse_binance({"symbol": "BTCUSDT", "price": "97000.00000000"}) == Decimal("97000")


def test_blockchain_numbers_are_decoded_as_decimal_not_float() -> None:
    body = json.loads(BLOCKCHAIN_TEXT, parse_float=Decimal)
    assert parse_blockchain(body) == Decimal("97000.01")
    # a plain json.loads gives floats: still exact to the digits shown
    assert parse_blockchain(json.loads(BLOCKCHAIN_TEXT)) == Decimal("97000.01")


@pytest.mark.parametrize(
    ("parser", "body"),
    [
        (parse_coinbase, None),
        (parse_coinbase, []),
        (parse_coinbase, {"errors": [{"id": "not_found", "message": "Invalid currency"}]}),
        (parse_coinbase, {"data": {"amount": "97000", "base": "ETH", "currency": "USD"}}),
        (parse_coinbase, {"data": {"amount": "97000", "base": "BTC", "currency": "EUR"}}),
        (parse_coinbase, {"data": {"amount": "a lot"}}),
        (parse_coinbase, {"data": "97000"}),
        (parse_kraken, {"error": ["EQuery:Unknown asset pair"]}),
        (parse_kraken, {"error": ["EService:Unavailable"], "result": KRAKEN["result"]}),
        (parse_kraken, {"error": [], "result": {}}),
        (parse_kraken, {"error": [], "result": {"XETHZUSD": {"c": ["3000", "1"]}, "XLTCZUSD": {}}}),
        (parse_kraken, {"error": [], "result": {"XXBTZUSD": {"c": []}}}),
        (parse_kraken, {"error": [], "result": {"XXBTZUSD": {"c": "97000"}}}),
        (parse_kraken, {"error": [], "result": {"XXBTZUSD": {"a": ["97000", "1", "1"]}}}),
        (parse_bitstamp, {"last": "n/a"}),
        (parse_bitstamp, {"last": None}),
        (parse_bitstamp, {"status": "error", "reason": "Not found"}),
        (parse_bitstamp, "97000"),
        (parse_binance, {"code": -1121, "msg": "Invalid symbol."}),
        (parse_binance, {"symbol": "ETHUSDT", "price": "3000"}),
        (parse_binance, {"symbol": "BTCUSDT", "price": True}),
        (parse_blockchain, {"EUR": {"last": 90000}}),
        (parse_blockchain, {"USD": {"last": None}}),
        (parse_blockchain, {"USD": {"last": "NaN"}}),
        (parse_blockchain, {"USD": {"last": float("inf")}}),
        (parse_blockchain, {"USD": 97000}),
    ],
)
def test_bad_shapes_are_value_errors(parser: Any, body: Any) -> None:
    with pytest.raises(ValueError):
        parser(body)


def test_to_decimal() -> None:
    assert to_decimal("97000.10", "x") == Decimal("97000.10")
    assert to_decimal(97000, "x") == Decimal(97000)
    assert to_decimal(0.1, "x") == Decimal("0.1")  # via repr: no binary expansion
    for bad in (True, None, "", "1,000", "Infinity", [1], {"a": 1}):
        with pytest.raises(ValueError, match="x"):
            to_decimal(bad, "x")


def test_every_parser_has_a_known_url_and_defaults_are_real_usd() -> None:
    assert set(PARSERS) == set(KNOWN_URLS)
    assert all(url.startswith("https://") for url in KNOWN_URLS.values())
    assert [s.name for s in DEFAULT_SOURCES] == ["coinbase", "kraken", "bitstamp", "blockchain"]
    assert all(s.url == KNOWN_URLS[s.name] and s.parse is PARSERS[s.name] for s in DEFAULT_SOURCES)


def test_parse_sources_env_string() -> None:
    spec = (
        " coinbase=http://127.0.0.1:9/coinbase , Kraken=https://proxy.example/0/public/Ticker?pair=XBTUSD&x=1,"
        "\nbitstamp\n,"
    )
    sources = parse_sources(spec)
    assert [(s.name, s.url) for s in sources] == [
        ("coinbase", "http://127.0.0.1:9/coinbase"),
        ("kraken", "https://proxy.example/0/public/Ticker?pair=XBTUSD&x=1"),
        ("bitstamp", KNOWN_URLS["bitstamp"]),
    ]
    assert sources[1].parse is parse_kraken


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("coinbase=https://a.example/x,coingecko=https://b.example/y", "unknown price source 'coingecko'"),
        ("https://api.coinbase.com/v2/prices/BTC-USD/spot", "unknown price source"),
        ("kraken=https://a.example/x,kraken=https://b.example/y", "'kraken' is listed twice"),
        ("kraken=", "empty URL"),
        ("kraken=ftp://a.example/x", "must be http"),
        ("kraken=a.example/x", "must be http"),
        (" , ,", "no price source"),
    ],
)
def test_parse_sources_rejects(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        parse_sources(spec)
    if "unknown" in message:
        assert "known: binance, bitstamp, blockchain, coinbase, kraken" in str(exc.value)


def test_sources_from_env_defaults_when_unset() -> None:
    assert sources_from_env(None) == DEFAULT_SOURCES
    assert sources_from_env("  ") == DEFAULT_SOURCES
    assert [s.name for s in sources_from_env("binance")] == ["binance"]
