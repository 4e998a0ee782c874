"""Fixtures for the dev tooling tests.

The real mint, the test wallet and the Nutshell venv (``mint``, ``wallet``, ``nutshell_python``) are the
session fixtures of ``tests/conftest.py``, shared with the node tests so one run starts one mint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from routstr.devtools.fake_upstream import STATE, FakeUpstreamState, start_fake_upstream


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mint: runs a real Nutshell mint (its venv is built once, ~1 min)")


@dataclass
class Upstream:
    url: str  # base URL, ends with /v1
    state: FakeUpstreamState


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def open_upstream() -> AsyncIterator[Upstream]:
    """A fake upstream that accepts any API key (the node tests' one requires theirs)."""
    runner, url = await start_fake_upstream(timeout_s=5)
    yield Upstream(url, runner.app[STATE])
    await runner.cleanup()


@pytest.fixture
def upstream(open_upstream: Upstream) -> Upstream:
    """The shared open fake upstream with its counters zeroed for this test."""
    open_upstream.state.reset()
    return open_upstream
