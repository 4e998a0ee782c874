"""The Alembic migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from alembic import command

from routstr.storage.migrate import alembic_config, upgrade
from tests.conftest import _backends, _drop_postgres_db, _postgres_db

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize("backend", _backends())
async def test_migrations_match_the_declared_schema(backend: str, tmp_path: Path):
    base = os.environ.get("TEST_POSTGRES_URL", "")
    name = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}"
    else:
        name, url = await _postgres_db(base)
        url = url.replace("postgresql://", "postgresql+asyncpg://")
    try:
        await upgrade(url)
        await upgrade(url)  # a second start-up finds nothing to do
        await asyncio.to_thread(command.check, alembic_config(url))  # raises on any drift
    finally:
        if name:
            await _drop_postgres_db(base, name)
