"""Bring the database schema up to date with Alembic (run at start-up and by tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_sync(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


async def upgrade(database_url: str) -> None:
    """Alembic is synchronous and its env runs its own event loop, so it gets a thread."""
    await asyncio.to_thread(upgrade_sync, database_url)
