"""The fake price server's own controls, used when it runs in another process."""

from __future__ import annotations

import aiohttp
import pytest

from routstr.devtools.fake_prices import sources_spec
from tests.rates.conftest import Prices


@pytest.mark.asyncio(loop_scope="session")
async def test_set_and_stats_over_http(prices: Prices, http: aiohttp.ClientSession) -> None:
    body = {"price": "90000.5", "prices": {"kraken": "91000"}, "mode": {"bitstamp": "down"}, "slow_s": 2}
    async with http.post(prices.url + "/_fake/set", json=body) as r:
        assert r.status == 200
    async with http.get(prices.url + "/coinbase") as r:
        assert (await r.json())["data"]["amount"] == "90000.5"
    async with http.get(prices.url + "/kraken") as r:
        assert (await r.json())["result"]["XXBTZUSD"]["c"][0] == "91000"
    async with http.get(prices.url + "/bitstamp") as r:
        assert r.status == 503
    async with http.get(prices.url + "/nope") as r:
        assert r.status == 404
    async with http.get(prices.url + "/_fake/stats") as r:
        stats = await r.json()
    assert stats["hits"] == {"coinbase": 1, "kraken": 1, "bitstamp": 1} and stats["slow_s"] == 2
    async with http.post(prices.url + "/_fake/set", json={"mode": {"kraken": "sideways"}}) as r:
        assert r.status == 400 and "sideways" in (await r.json())["error"]
    async with http.post(prices.url + "/_fake/set", json={"reset": True}) as r:
        assert (await r.json())["requests_total"] == 0 and prices.state.mode == {}


def test_sources_spec() -> None:
    assert (
        sources_spec("http://h:1", ("coinbase", "kraken"))
        == "coinbase=http://h:1/coinbase,kraken=http://h:1/kraken"
    )
    with pytest.raises(ValueError, match="unknown source"):
        sources_spec("http://h:1", ("coingecko",))
