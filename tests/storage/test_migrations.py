"""The Alembic migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command

from routstr.storage.migrate import alembic_config, upgrade
from tests.conftest import _backends, fresh_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize("backend", _backends())
async def test_migrations_match_the_declared_schema(backend: str, tmp_path: Path):
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url)
        await upgrade(url)  # a second start-up finds nothing to do
        await asyncio.to_thread(command.check, alembic_config(url))  # raises on any drift
