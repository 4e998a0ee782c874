"""Fixtures for the dev tooling: a fake OpenAI upstream, a real Nutshell mint and a test wallet."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from routstr.devtools.fake_upstream import STATE, FakeUpstreamState, start_fake_upstream
from routstr.devtools.nutshell import NutshellMint, ensure_nutshell_venv
from routstr.devtools.test_wallet import TestWallet


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mint: runs a real Nutshell mint (its venv is built once, ~1 min)")


@dataclass
class Upstream:
    url: str  # base URL, ends with /v1
    state: FakeUpstreamState


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def upstream_server() -> AsyncIterator[Upstream]:
    runner, url = await start_fake_upstream(timeout_s=5)
    yield Upstream(url, runner.app[STATE])
    await runner.cleanup()


@pytest.fixture
def upstream(upstream_server: Upstream) -> Upstream:
    """The shared fake upstream with its counters zeroed for this test."""
    upstream_server.state.reset()
    return upstream_server


@pytest.fixture(scope="session")
def nutshell_python() -> Path:
    """The Nutshell venv; a build failure skips locally but fails in CI (CI=true or ROUTSTR_REQUIRE_MINT)."""
    try:
        return ensure_nutshell_venv()
    except Exception as e:
        if os.environ.get("CI") or os.environ.get("ROUTSTR_REQUIRE_MINT"):
            raise
        pytest.skip(f"cannot build the Nutshell venv: {e}")


@pytest.fixture(scope="session")
def mint(nutshell_python: Path) -> Iterator[NutshellMint]:
    with NutshellMint("devtools-test") as m:
        yield m


@pytest.fixture(scope="session")
def wallet(nutshell_python: Path) -> Iterator[TestWallet]:
    with TestWallet() as w:
        yield w
