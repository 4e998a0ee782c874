"""Fixtures of the node tests: a real ``routstr serve`` process for the crash tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.conftest import PRICING, Upstream, _backends, fresh_database, node_env
from tests.node.node_process import NodeProcess


@pytest_asyncio.fixture(loop_scope="session", params=_backends())
async def node_proc(
    request: pytest.FixtureRequest, tmp_path: Path, mint_url: str, fake_upstream: Upstream
) -> AsyncIterator[NodeProcess]:
    pricing = tmp_path / "pricing.toml"
    pricing.write_text(PRICING)
    async with fresh_database(request.param, tmp_path) as db_url:
        node = NodeProcess(
            node_env(
                mint_url, fake_upstream.url, db_url, pricing, RESERVATION_TTL_SECONDS="1", SECRET_KEY="k"
            ),
            tmp_path / "node.log",
        )
        try:
            yield node
        finally:
            node.stop()
