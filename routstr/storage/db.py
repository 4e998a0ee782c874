"""Engines and transactions for SQLite (embedded default) and PostgreSQL (scale-out).

Statement parameters are kept out of error messages (``hide_parameters``): they include proofs and
tokens, and error messages end up in logs.

SQLite gets WAL, ``synchronous=NORMAL`` and ``BEGIN IMMEDIATE`` write transactions (so two writers
never deadlock upgrading a read lock), through one dedicated writer connection; reads use a small
pool of their own. PostgreSQL uses one pool for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from routstr.storage.hot_ledger import HotLedger
from routstr.storage.pg_writer import PgLedger
from routstr.storage.writer import SqliteLedger


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # aiosqlite's adapter: turn off pysqlite's implicit BEGIN so ours is the only one
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _make_sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url, poolclass=AsyncAdaptedQueuePool, pool_size=pool_size, max_overflow=0, hide_parameters=True
    )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)

    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    event.listen(engine.sync_engine, "begin", _begin)
    return engine


# DB_POOL_SIZE's default (routstr.config reads it from here: config imports this package's modules, so
# they cannot import config)
POOL_SIZE = 10


class Database:
    """The node's one handle on storage: ``async with db.write() as conn`` is one transaction."""

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        """``pool_size``: PostgreSQL connections per process for SQLAlchemy, as many again in bursts,
        plus as many for the hot path (a fleet of N processes may open 3 x N x pool_size: keep that
        under the server's ``max_connections``)."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.writer = _make_sqlite_engine(url, immediate=True, pool_size=1)
            self.reader = _make_sqlite_engine(url, immediate=False, pool_size=4)
        else:
            self.writer = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, hide_parameters=True
            )
            self.reader = self.writer
        # the hot path (reserve, settle, their leases and sweep): the one place a backend's is chosen
        self.ledger: HotLedger = (
            SqliteLedger(url) if self.is_sqlite else PgLedger(url, self.writer, pool_size)
        )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        async with self.writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def close(self) -> None:
        await self.ledger.close()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
