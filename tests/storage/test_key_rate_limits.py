"""Per-key rate-limit overrides in ``key_rate_limits`` (storage/limit_overrides.py): the migration moves
the old JSON row into the table and back, a key's row goes with the key, and an override of a key that
does not exist is refused rather than stored for nobody."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from routstr.limits import Limits
from routstr.storage import accounts, admin_queries, limit_overrides
from routstr.storage.db import Database
from routstr.storage.migrate import alembic_config, upgrade
from routstr.storage.schema import api_keys, node_settings
from tests.conftest import _backends, fresh_database

pytestmark = pytest.mark.asyncio(loop_scope="session")

BEFORE = "0011_invoice_sealed_key"  # the revision before the table
SETTING = "rate_limit_overrides"


async def _setting(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await accounts.get_setting(conn, SETTING)
    finally:
        await engine.dispose()


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _key(conn: AsyncConnection) -> int:
    return await accounts.create_key(conn, os.urandom(16).hex(), "sk", None, "sat")


@pytest.mark.parametrize("backend", _backends())
async def test_the_migration_moves_the_json_overrides_into_the_table_and_back(backend: str, tmp_path: Path):
    async with fresh_database(backend, tmp_path) as url:
        cfg = alembic_config(url)
        await asyncio.to_thread(command.upgrade, cfg, BEFORE)
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                a, b, c = await _key(conn), await _key(conn), await _key(conn)
                stored = {
                    str(a): [7, 0, 0],
                    str(b): [1, 2, 3],
                    "999999": [5, 5, 5],  # no such key: applied to nobody
                    str(c): [-1, 0, 0],  # not a limit
                    "x": [1, 1, 1],
                }
                await conn.execute(insert(node_settings).values(name=SETTING, value=json.dumps(stored)))
        finally:
            await engine.dispose()

        await upgrade(url)
        moved = {a: Limits(7, 0, 0), b: Limits(1, 2, 3)}
        db = Database(url)
        try:
            assert await limit_overrides.load(db) == moved
        finally:
            await db.close()
        assert await _setting(url) is None  # one place only

        await asyncio.to_thread(command.downgrade, cfg, BEFORE)
        assert "key_rate_limits" not in await _tables(url)
        raw = await _setting(url)
        assert raw is not None and json.loads(raw) == {str(a): [7, 0, 0], str(b): [1, 2, 3]}

        await upgrade(url)  # and forward again: the same rows
        db = Database(url)
        try:
            assert await limit_overrides.load(db) == moved
        finally:
            await db.close()


async def test_overrides_are_one_row_a_key_and_go_with_their_key(db: Database):
    async with db.write() as conn:
        a, b = await _key(conn), await _key(conn)
    assert await limit_overrides.set_override(db, 10**12, Limits(1, 1, 1)) is None  # no such key
    assert await limit_overrides.load(db) == {}

    assert await limit_overrides.set_override(db, a, Limits(7, 0, 0)) == {a: Limits(7, 0, 0)}
    assert await limit_overrides.set_override(db, a, Limits(8, 9, 10)) == {a: Limits(8, 9, 10)}  # updated
    both = {a: Limits(8, 9, 10), b: Limits(0, 0, 1)}
    assert await limit_overrides.set_override(db, b, Limits(0, 0, 1)) == both
    async with db.read() as conn:
        shown = await admin_queries.keys_by_id(conn, a)
        assert shown[0].limits_override == {"requests_per_minute": 8, "tokens_per_hour": 9, "concurrent": 10}
        assert (await admin_queries.keys_by_id(conn, b))[0].limits_override == {
            "requests_per_minute": 0,
            "tokens_per_hour": 0,
            "concurrent": 1,
        }

    assert await limit_overrides.set_override(db, a, None) == {b: Limits(0, 0, 1)}  # back to the defaults
    assert await limit_overrides.set_override(db, 10**12, None) == {b: Limits(0, 0, 1)}  # nothing to drop
    async with db.read() as conn:
        assert (await admin_queries.keys_by_id(conn, a))[0].limits_override is None

    async with db.write() as conn:  # a key that is deleted (a refused token's) takes its row along
        await conn.execute(delete(api_keys).where(api_keys.c.id == b))
    assert await limit_overrides.load(db) == {}
    async with db.read() as conn:
        assert (await conn.execute(select(api_keys.c.id).where(api_keys.c.id == b))).first() is None
