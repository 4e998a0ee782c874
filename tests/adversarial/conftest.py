"""Fixtures of the adversarial tests: the fake provider, and real node processes.

A module configures its node with a module-level ``NODE_ENV`` dict (e.g. a short reservation lease);
modules without one share one node per backend for the whole session (a start costs ~2.5 s).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio

from routstr.devtools.fake_provider import FakeProvider, start_fake_provider
from tests.adversarial.support import ANTHROPIC_MODELS, OPENAI_MODELS, PRICES, PROVIDER_KEY, AdvNode, adv_node
from tests.conftest import _backends


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def provider() -> AsyncIterator[FakeProvider]:
    p = await start_fake_provider(models=OPENAI_MODELS + ANTHROPIC_MODELS, api_key=PROVIDER_KEY)
    yield p
    await p.stop()


class NodePool:
    """Node processes by (backend, configuration), started when first asked for, stopped at the end."""

    def __init__(
        self, stack: AsyncExitStack, factory: pytest.TempPathFactory, mint_url: str, url: str
    ) -> None:
        self.stack, self.factory, self.mint_url, self.url = stack, factory, mint_url, url
        self.nodes: dict[tuple[str, tuple[tuple[str, str], ...]], AdvNode] = {}

    async def get(self, backend: str, env: dict[str, str]) -> AdvNode:
        key = (backend, tuple(sorted(env.items())))
        if key not in self.nodes:
            tmp = self.factory.mktemp(f"adv-{backend}")
            node = await self.stack.enter_async_context(
                adv_node(backend, tmp, self.mint_url, self.url, **env)
            )
            # the prices the node advertises are the ones this suite computes with (sats per token)
            listed = await node.models()
            for model, price in PRICES.items():
                sats = listed[model]["sats_pricing"]
                assert (sats["prompt"], sats["completion"]) == (price.prompt / 1e6, price.completion / 1e6)
            self.nodes[key] = node
        return self.nodes[key]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def node_pool(
    tmp_path_factory: pytest.TempPathFactory, mint_url: str, provider: FakeProvider
) -> AsyncIterator[NodePool]:
    async with AsyncExitStack() as stack:
        yield NodePool(stack, tmp_path_factory, mint_url, provider.url)


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=_backends())
async def node(request: pytest.FixtureRequest, node_pool: NodePool) -> AdvNode:
    return await node_pool.get(request.param, getattr(request.module, "NODE_ENV", {}))
