"""The feed against the fake price server: median, failures, timeout, staleness, pinning, background loop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from routstr.config import DEFAULTS
from routstr.devtools.fake_prices import NAMES, sources_spec
from routstr.rates import BtcUsdFeed, StaleRate, parse_sources
from tests.rates.conftest import FakeClock, Prices

pytestmark = pytest.mark.asyncio(loop_scope="session")

THREE = ("coinbase", "kraken", "bitstamp")
# the node's defaults (BTC_USD_REFRESH_SECONDS, BTC_USD_MAX_AGE_SECONDS): the feed has none of its own
REFRESH_S, MAX_AGE_S = DEFAULTS.btc_usd_refresh_s, DEFAULTS.btc_usd_max_age_s


@pytest_asyncio.fixture(loop_scope="session")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def make_feed(
    prices: Prices, session: aiohttp.ClientSession, names: tuple[str, ...] = THREE, **kw: Any
) -> BtcUsdFeed:
    return BtcUsdFeed(
        parse_sources(sources_spec(prices.url, names)),
        session,
        **{"refresh_s": REFRESH_S, "max_age_s": MAX_AGE_S, **kw},
    )


async def test_median_of_three(prices: Prices, session: aiohttp.ClientSession, clock: FakeClock) -> None:
    prices.state.prices.update(
        coinbase=Decimal("97000"), kraken=Decimal("97100.5"), bitstamp=Decimal("96000")
    )
    feed = make_feed(prices, session, clock=clock)
    assert await feed.refresh() == Decimal("97000")
    assert feed.rate() == Decimal("97000") and isinstance(feed.rate(), Decimal)
    assert dict(prices.state.hits) == {"coinbase": 1, "kraken": 1, "bitstamp": 1}


async def test_every_source_shape_round_trips(prices: Prices, session: aiohttp.ClientSession) -> None:
    """Each fake answer is read by its parser: the fake and the parsers agree on the shapes."""
    prices.state.price = Decimal("101234.56")
    for name in NAMES:
        feed = make_feed(prices, session, (name,))
        assert await feed.refresh() == Decimal("101234.56"), feed.snapshot()


async def test_even_count_median_is_the_mean_of_the_middle_two(
    prices: Prices, session: aiohttp.ClientSession
) -> None:
    prices.state.prices.update(coinbase=Decimal(90000), kraken=Decimal(91000), bitstamp=Decimal(99000))
    prices.state.prices.update(blockchain=Decimal(92001))
    feed = make_feed(prices, session, ("coinbase", "kraken", "bitstamp", "blockchain"))
    assert await feed.refresh() == Decimal("91500.5")


async def test_down_and_garbage_leave_the_median_of_the_rest(
    prices: Prices, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    st = prices.state
    st.prices.update(coinbase=Decimal(95000), bitstamp=Decimal(97000), binance=Decimal(99000))
    st.mode.update(kraken="down", blockchain="garbage")
    feed = make_feed(prices, session, ("coinbase", "kraken", "bitstamp", "binance", "blockchain"))
    with caplog.at_level(logging.INFO, logger="routstr.rates"):
        assert await feed.refresh() == Decimal(97000)
    snap = feed.snapshot()
    assert snap["sources"]["kraken"] == {"value": None, "age_s": None, "error": "HTTP 503"}
    assert snap["sources"]["blockchain"]["error"].startswith("unexpected answer:")
    assert snap["sources"]["coinbase"]["value"] == "95000"
    # logs and diagnostics name sources, never their URLs
    assert "kraken" in caplog.text and "blockchain" in caplog.text
    assert prices.url not in caplog.text and "127.0.0.1" not in str(snap)


async def test_not_json_and_absurd_values_are_dropped(prices: Prices, session: aiohttp.ClientSession) -> None:
    st = prices.state
    st.mode["kraken"] = "badjson"
    st.prices.update(coinbase=Decimal(0), bitstamp=Decimal("1E9"), binance=Decimal(50))
    st.prices["blockchain"] = Decimal("98000.5")
    feed = make_feed(prices, session, ("coinbase", "kraken", "bitstamp", "binance", "blockchain"))
    assert await feed.refresh() == Decimal("98000.5")
    errors = {n: s["error"] for n, s in feed.snapshot()["sources"].items()}
    assert errors["kraken"] == "answer is not JSON"
    assert errors["coinbase"].startswith("absurd price 0 ")
    assert errors["bitstamp"].startswith("absurd price 1E+9 ")
    assert errors["binance"].startswith("absurd price 50 ")


async def test_slow_source_is_cut_by_the_timeout(prices: Prices, session: aiohttp.ClientSession) -> None:
    prices.state.mode["kraken"] = "slow"
    prices.state.prices.update(coinbase=Decimal(96000), bitstamp=Decimal(98000))
    feed = make_feed(prices, session, timeout_s=0.3)
    t0 = time.monotonic()
    assert await feed.refresh() == Decimal(97000)
    assert time.monotonic() - t0 < 1.5
    assert feed.snapshot()["sources"]["kraken"]["error"] == "no answer within 0.3s"


async def test_sources_are_asked_concurrently(prices: Prices, session: aiohttp.ClientSession) -> None:
    prices.state.slow_s = 0.3
    prices.state.mode.update(dict.fromkeys(THREE, "slow"))
    feed = make_feed(prices, session, timeout_s=2)
    t0 = time.monotonic()
    assert await feed.refresh() == prices.state.price
    assert time.monotonic() - t0 < 0.8  # three 0.3 s answers one after the other would take 0.9 s


async def test_nothing_answered_is_stale_with_a_clear_message(
    prices: Prices, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    prices.state.mode.update(dict.fromkeys(THREE, "down"))
    feed = make_feed(prices, session, clock=clock)
    assert await feed.refresh() is None
    with pytest.raises(StaleRate, match=r"no BTC/USD rate yet.*USD-priced models are unavailable") as exc:
        feed.rate()
    assert exc.value.age_s is None
    assert feed.snapshot()["stale"] is True and feed.snapshot()["rate"] is None


async def test_stale_after_max_age(prices: Prices, session: aiohttp.ClientSession, clock: FakeClock) -> None:
    feed = make_feed(prices, session, clock=clock, refresh_s=60, max_age_s=600)
    assert await feed.refresh() == Decimal("97000.12")
    prices.state.mode.update(dict.fromkeys(THREE, "down"))
    clock.now += 300
    assert await feed.refresh() is None  # a failed round keeps the last good rate...
    assert feed.rate() == Decimal("97000.12")
    clock.now += 300
    assert feed.rate() == Decimal("97000.12")  # ...up to max_age_s inclusive
    clock.now += 1
    with pytest.raises(
        StaleRate, match=r"is 601s old \(limit 600s\).*USD-priced models are unavailable"
    ) as exc:
        feed.rate()
    assert exc.value.age_s == pytest.approx(601) and exc.value.max_age_s == 600
    snap = feed.snapshot()
    assert snap["stale"] is True and snap["age_s"] == 601 and snap["rate"] == "97000.12"
    assert snap["sources"]["kraken"] == {"value": "97000.12", "age_s": 601, "error": "HTTP 503"}
    # a source answering again makes the rate fresh again
    prices.state.mode.clear()
    prices.state.price = Decimal(99000)
    assert await feed.refresh() == Decimal(99000)
    assert feed.rate() == Decimal(99000) and feed.age_s() == 0


async def test_min_sources(prices: Prices, session: aiohttp.ClientSession, clock: FakeClock) -> None:
    prices.state.mode.update(kraken="down", bitstamp="garbage")
    feed = make_feed(prices, session, clock=clock, min_sources=2)
    assert await feed.refresh() is None
    with pytest.raises(StaleRate):
        feed.rate()
    prices.state.mode.pop("kraken")
    assert await feed.refresh() == Decimal("97000.12")


async def test_pinned_rate_never_touches_the_network(prices: Prices, session: aiohttp.ClientSession) -> None:
    feed = make_feed(prices, session, pinned=Decimal(100000))
    assert await feed.refresh() == Decimal(100000)
    assert feed.rate() == Decimal(100000)
    await asyncio.wait_for(feed.run_forever(), 1)  # returns at once
    async with feed.running():
        assert feed.rate() == Decimal(100000)
    assert feed.snapshot() == {"pinned": True, "rate": "100000", "age_s": None, "stale": False, "sources": {}}
    assert prices.state.requests_total == 0
    # no session and no sources are needed either
    alone = BtcUsdFeed((), None, pinned=Decimal(1), refresh_s=REFRESH_S, max_age_s=MAX_AGE_S)
    assert alone.rate() == Decimal(1)


async def test_run_forever_refreshes_and_survives_errors(
    prices: Prices, session: aiohttp.ClientSession
) -> None:
    feed = make_feed(prices, session, refresh_s=0.05, retry_s=0.05)
    real_refresh = feed.refresh
    calls = 0

    async def flaky() -> Decimal | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return await real_refresh()

    feed.refresh = flaky  # type: ignore[method-assign]
    task = asyncio.create_task(feed.run_forever())
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if prices.state.hits["coinbase"] >= 2:
                break
        prices.state.price = Decimal(98000)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if feed.snapshot()["rate"] == "98000":
                break
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert calls >= 3 and feed.rate() == Decimal(98000)


async def test_running_block_has_a_rate_from_the_start(
    prices: Prices, session: aiohttp.ClientSession
) -> None:
    feed = make_feed(prices, session, refresh_s=30)
    async with feed.running() as f:
        assert f.rate() == Decimal("97000.12")
    hits = prices.state.requests_total
    await asyncio.sleep(0.05)
    assert prices.state.requests_total == hits == 3  # one round, and the background task is gone


async def test_connection_refused_is_a_source_error(prices: Prices, session: aiohttp.ClientSession) -> None:
    spec = f"coinbase={prices.url}/coinbase,kraken=http://127.0.0.1:9/kraken"
    feed = BtcUsdFeed(parse_sources(spec), session, timeout_s=2, refresh_s=REFRESH_S, max_age_s=MAX_AGE_S)
    assert await feed.refresh() == Decimal("97000.12")
    assert feed.snapshot()["sources"]["kraken"]["error"] == "connection failed (ClientConnectorError)"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"pinned": Decimal(0)}, "positive"),
        ({"min_sources": 4}, "min_sources=4"),
        ({"refresh_s": 60, "max_age_s": 60}, "must exceed refresh_s"),
        ({"timeout_s": 0}, "positive"),
        ({"sane_range": (Decimal(10), Decimal(1))}, "sane_range"),
    ],
)
async def test_bad_settings_are_refused(
    prices: Prices, session: aiohttp.ClientSession, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_feed(prices, session, **kw)
    with pytest.raises(ValueError, match="session"):
        BtcUsdFeed(parse_sources("coinbase"), None, refresh_s=REFRESH_S, max_age_s=MAX_AGE_S)
