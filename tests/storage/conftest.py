"""A migrated database per test (SQLite, and PostgreSQL when the suite is given one) and a funded key."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from routstr.storage import accounts
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from tests.conftest import fresh_database


@pytest_asyncio.fixture(loop_scope="session")
async def db(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url)
        d = Database(url)
        try:
            yield d
        finally:
            await d.close()


async def funded_key(db: Database, msat: int) -> int:
    async with db.write() as conn:
        key_id = await accounts.create_key(conn, os.urandom(8).hex(), "sk", "http://mint", "sat")
        await accounts.credit(conn, key_id, msat)
    return key_id
