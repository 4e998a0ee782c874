"""Choosing the node's proofs to spend: exact sums first, then one covering proof, never the whole
wallet read, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from routstr.storage import wallet_store
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from tests.conftest import _backends, fresh_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
MINT = "http://mint.test"


@pytest.mark.parametrize("backend", _backends())
async def test_exact_sums_then_one_covering_proof(backend: str, tmp_path: Path):
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url)
        db = Database(url)
        try:
            amounts = [1024, 16, 4, 2, 1]
            async with db.write() as conn:
                new = [
                    {"id": "00ab", "amount": a, "secret": f"s{i}", "C": f"c{i}", "Y": f"y{i}"}
                    for i, a in enumerate(amounts)
                ]
                await wallet_store.add_proofs(conn, MINT, "sat", "seed", new)

            async def take(amount: int, swap: str) -> list[int] | None:
                async with db.write() as conn:
                    got = await wallet_store.take_proofs(conn, MINT, "sat", amount, swap)
                return None if got is None else sorted(p["amount"] for p in got)

            assert await take(20, "a") == [4, 16]  # exact: nothing to split
            assert await take(3, "b") == [1, 2]
            assert await take(5, "c") == [1024]  # no exact sum left: the smallest covering proof
            assert await take(1, "d") is None  # everything is reserved now
            async with db.write() as conn:
                await wallet_store.settle_inputs(conn, "c", spent=False)  # that swap never happened
            assert await take(2000, "e") is None
            assert await take(1000, "f") == [1024]
        finally:
            await db.close()


@pytest.mark.parametrize("backend", _backends())
async def test_a_wallet_of_many_equal_proofs_still_finds_the_exact_sum(backend: str, tmp_path: Path):
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url)
        db = Database(url)
        try:
            amounts = [16] * 100 + [64, 2, 1]
            async with db.write() as conn:
                new = [
                    {"id": "00ab", "amount": a, "secret": f"s{i}", "C": f"c{i}", "Y": f"y{i}"}
                    for i, a in enumerate(amounts)
                ]
                await wallet_store.add_proofs(conn, MINT, "sat", "seed", new)
                got = await wallet_store.take_proofs(conn, MINT, "sat", 19, "x")
            assert got is not None and sorted(p["amount"] for p in got) == [1, 2, 16]
        finally:
            await db.close()
