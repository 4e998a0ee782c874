"""The runtime snapshot and its holder (upstream/runtime.py): a change is a new version, the old one is
left whole (a request holding it keeps seeing it), and a model list asked for providers that were
replaced meanwhile does not overwrite their replacement's. The request-level behaviour is in
``test_runtime_snapshot.py``."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from routstr.core.pricing import PriceBook, parse_spec
from routstr.limits import LimitPolicy, Limits
from routstr.upstream.catalogue import Catalogue
from routstr.upstream.client import Upstream
from routstr.upstream.managed import effective
from routstr.upstream.providers import Provider
from routstr.upstream.runtime import Runtime, RuntimeHolder
from routstr.upstream.spec import ProviderSpec


def _prices(prompt_sats: int) -> PriceBook:
    return PriceBook(models={"m": parse_spec({"prompt_sats_per_mtok": prompt_sats}, "m")})


def test_a_change_is_a_new_version_and_the_old_one_stays_as_it_was() -> None:
    spec = ProviderSpec("p", "http://127.0.0.1:9/v1")
    old_offer = effective([spec], {"fast": ("m",)}, _prices(1000), [], [])
    holder = RuntimeHolder(Runtime(1, (), old_offer, LimitPolicy(Limits(5, 0, 0))))
    catalogue = Catalogue(PriceBook(), lambda: Decimal(100_000), 1000, runtime=holder)
    old = holder.current
    assert catalogue.price("m", old).prompt_msat_per_mtok == 1_000_000 and "m" in old.resolved

    new_offer = effective([spec], {"fast": ("other",)}, _prices(3000), [], [])
    new = holder.replace(offer=new_offer, limits=LimitPolicy(Limits(5, 0, 0), {7: Limits(1, 0, 0)}))
    assert holder.current is new and new.version == old.version + 1
    assert new.resolved == {}  # prices are resolved again under the new version, never carried over
    assert catalogue.price("m").prompt_msat_per_mtok == 3_000_000  # the current version's
    # the request that holds the old version still sees all of it
    assert catalogue.price("m", old).prompt_msat_per_mtok == 1_000_000
    assert old.aliases == {"fast": ("m",)} and new.aliases == {"fast": ("other",)}
    assert old.limits.limits_for(7) == Limits(5, 0, 0) and new.limits.limits_for(7) == Limits(1, 0, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        old.limits = new.limits  # type: ignore[misc]


@pytest.fixture
async def slow_models() -> AsyncIterator[tuple[str, asyncio.Event, asyncio.Event]]:
    """A provider whose ``/models`` answers only once the test opens the gate."""
    asked, gate = asyncio.Event(), asyncio.Event()

    async def models(request: web.Request) -> web.Response:
        asked.set()
        await gate.wait()
        return web.json_response({"data": [{"id": "listed-model"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1", asked, gate
    gate.set()
    await runner.cleanup()


async def test_a_model_list_of_providers_replaced_meanwhile_is_dropped(
    slow_models: tuple[str, asyncio.Event, asyncio.Event],
) -> None:
    url, asked, gate = slow_models
    spec = ProviderSpec("p", url)
    upstream = Upstream(url, "", aiohttp.ClientSession(), connect_timeout_s=2.0, read_timeout_s=5.0)
    provider = Provider(spec, upstream)
    holder = RuntimeHolder(Runtime(1, (provider,), effective([spec], {}, PriceBook(), [], []), LimitPolicy()))
    catalogue = Catalogue(PriceBook(), lambda: Decimal(100_000), 1000, runtime=holder)
    try:
        refreshing = asyncio.create_task(catalogue.refresh())
        await asyncio.wait_for(asked.wait(), 5)
        # the managed catalogue swaps the providers in (with their own lists) while this one is asked
        replaced = holder.replace(providers=(Provider(spec, upstream),))
        gate.set()
        await refreshing
        assert holder.current is replaced and "listed-model" not in replaced.models

        await catalogue.refresh()  # not raced: the answer goes into a new version
        listed = holder.current
        assert listed.version == replaced.version + 1 and listed.lists("listed-model")
        await catalogue.refresh()  # the same answer: no new version
        assert holder.current is listed
    finally:
        await upstream.session.close()
