"""Fixtures for the rate feed tests: one fake price server for the session, reset before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from routstr.devtools.fake_prices import STATE, FakePricesState, start_fake_prices


@dataclass
class Prices:
    url: str  # base URL; a source answers at url + "/<name>"
    state: FakePricesState


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def price_server() -> AsyncIterator[Prices]:
    runner, url = await start_fake_prices()
    yield Prices(url, runner.app[STATE])
    await runner.cleanup()


@pytest.fixture
def prices(price_server: Prices) -> Prices:
    """The shared fake price server, every source ok at one price, counters zeroed."""
    price_server.state.reset()
    return price_server


class FakeClock:
    """A monotonic clock the test moves by hand, so staleness is tested without sleeping."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
