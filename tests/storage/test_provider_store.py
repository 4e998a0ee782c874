"""Stored providers and model settings: every change steps the catalogue version (one after the
other, also when many writers race), names stay unique, partial changes keep the rest."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from routstr.storage import provider_store as store
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from tests.conftest import _backends, fresh_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize("backend", _backends())
async def test_changes_step_the_version_and_keep_what_they_do_not_touch(backend: str, tmp_path: Path):
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url)
        db = Database(url)
        try:
            async with db.read() as conn:
                assert await store.version(conn) == "0"
            fields = {
                "name": "p1",
                "base_url": "http://127.0.0.1:1/v1",
                "kind": "openai",
                "api_key_sealed": "v1:sealed",
                "fee": Decimal("0.05"),
                "models": ("a", "b"),
                "enabled": True,
            }
            async with db.write() as conn:
                pid = await store.add_provider(conn, **fields)
            assert pid is not None
            async with db.write() as conn:
                assert await store.add_provider(conn, **fields) is None  # the name is taken
            async with db.write() as conn:
                assert await store.update_provider(conn, pid, {"enabled": False, "models": None})
                assert not await store.update_provider(conn, pid + 100, {"enabled": True})
            async with db.read() as conn:
                [row] = await store.list_providers(conn)
                version = await store.version(conn)
            assert (row.fee, row.models, row.enabled, row.api_key_sealed) == (
                Decimal("0.05"),
                None,
                False,
                "v1:sealed",
            )
            assert version == "4"  # every change, even one that found nothing, stepped it

            async with db.write() as conn:
                first = await store.change_model_setting(conn, "m", {"price": {"request_sats": 2}})
                second = await store.change_model_setting(conn, "m", {"enabled": False, "aliases": ("x",)})
            assert (first.enabled, first.aliases) == (True, None)
            assert (second.price, second.enabled, second.aliases) == ({"request_sats": 2}, False, ("x",))
            async with db.read() as conn:
                assert await store.model_setting(conn, "m") == second
            async with db.write() as conn:
                assert await store.delete_model_setting(conn, "m")
                assert not await store.delete_model_setting(conn, "m")
                assert await store.delete_provider(conn, pid)
            async with db.read() as conn:
                assert await store.list_model_settings(conn) == [] == await store.list_providers(conn)
        finally:
            await db.close()


@pytest.mark.parametrize("backend", _backends())
async def test_racing_writers_each_get_their_own_version(backend: str, tmp_path: Path):
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url)
        writers = [Database(url) for _ in range(3)]  # as several processes would
        try:

            async def change(db: Database, i: int) -> str:
                async with db.write() as conn:
                    await store.change_model_setting(conn, f"model-{i}", {"enabled": False})
                    return await store.version(conn)

            seen = await asyncio.gather(*(change(writers[i % 3], i) for i in range(12)))
            assert sorted(int(v) for v in seen) == list(range(1, 13))
        finally:
            for db in writers:
                await db.close()
