"""The mint registry and the mint client choose the same keyset, on a real Nutshell mint with two active
sat keysets at different fees: the cheapest, not the first the mint lists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from routstr.cashu.mint_client import MintClient
from routstr.cashu.nut02 import fee_table
from routstr.devtools.nutshell import NutshellMint
from routstr.wallet.mints import MintRegistry

pytestmark = pytest.mark.mint  # registered by tests/conftest.py: "runs a real Nutshell mint"


@pytest.fixture(scope="module")
def two_sat_keysets(nutshell_python: Path) -> Iterator[NutshellMint]:
    """First run: sat (m/0'/0'/0') and msat keysets at 100 ppk. Second run, with the fee set to 0: a
    second sat keyset (m/0'/0'/1') joins them; Nutshell keeps the first active and lists it first."""
    mint = NutshellMint("keyset-choice", input_fee_ppk=100, units=("sat", "msat"))
    try:
        mint.start()
        mint.stop()
        mint.input_fee_ppk = 0
        mint.extra_env["MINT_DERIVATION_PATH_LIST"] = json.dumps(["m/0'/1'/0'", "m/0'/0'/1'"])
        mint.start()
        yield mint
    finally:
        mint.cleanup()


async def test_registry_and_client_pick_the_cheapest_active_keyset(two_sat_keysets: NutshellMint) -> None:
    url = two_sat_keysets.url
    async with aiohttp.ClientSession() as session:
        infos = await MintClient(url, session).keysets()
        sat = [k for k in infos if k.unit == "sat" and k.active]
        assert [k.input_fee_ppk for k in sat] == [100, 0]  # the dear one first: "first" would take it
        free = sat[1]

        client = MintClient(url, session)
        registry = MintRegistry((url,), session, 20.0)
        assert (await client.active_keyset("sat")).id == free.id
        assert (await registry.active_keyset(url, "sat")).id == free.id
        msat = (await client.active_keyset("msat")).id
        assert msat == (await registry.active_keyset(url, "msat")).id
        assert [k.unit for k in infos if k.id == msat] == ["msat"]

        # the fee table every spending path uses: all three keysets, the mint's fees
        table = await registry.client(url).fee_ppk_by_keyset()
        assert table == fee_table(infos) and sorted(table.values()) == [0, 100, 100]
