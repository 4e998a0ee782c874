"""The hot ledger on PostgreSQL: reserve and settle as one statement each on a raw asyncpg pool.

Through SQLAlchemy every statement of ``ledger_ops.reserve`` / ``settle`` was a round trip plus the
ORM's per-statement work (9 statements and two BEGIN/COMMITs per request; measured in bench/: 273
req/s against 2,529 on SQLite). Here each is one data-modifying CTE, so one round trip that commits
on its own: all of its parts happen or none does. The CTEs are composed from ``ledger_ops``'s own
statements (``INSERT … VALUES`` turned into ``INSERT … SELECT … FROM`` the step before it, named
parameters numbered for asyncpg): the SQL of each operation is written once.

The rules stay in ``routstr.core.ledger``: the settlement is computed in Python for the common case
(the reservation is still there and the cost fits in it) and the statement only applies it if that
case holds. Anything else (a limited key, the sweeper released the reservation, the cost overran it)
and every other operation take the portable path in ``ledger_ops`` through SQLAlchemy, one
transaction each.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from routstr.core import ledger as rules
from routstr.storage import ledger_ops as ops
from routstr.storage import limited_ops

T = TypeVar("T")
_GENERAL = object()  # a fast path's answer: "not my case, take the portable path"
_PARAM = re.compile(r"(?<![:\w]):([a-z_]\w*)")


def rename(sql: str, **names: str) -> str:
    """``sql`` with some of its ``:name`` parameters replaced by other SQL (a parameter, a literal)."""
    return _PARAM.sub(lambda m: names.get(m[1], m[0]), sql)


def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """``sql`` with ``$1, $2, …`` for its ``:name`` parameters (asyncpg's form), and their names in order."""
    order: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m[1] not in order:
            order.append(m[1])
        return f"${order.index(m[1]) + 1}"

    return _PARAM.sub(number, sql), tuple(order)


def insert_after(insert: str, step: str, where: str = "") -> str:
    """A ``ledger_ops`` ``INSERT … VALUES (…)`` as ``INSERT … SELECT … FROM step``: it writes its row only
    if the CTE ``step`` returned one."""
    head, sep, values = insert.partition(" VALUES (")
    if not sep or not values.endswith(")"):
        raise ValueError(f"not an INSERT … VALUES (…): {insert!r}")
    return f"{head} SELECT {values[:-1]} FROM {step}" + (f" WHERE {where}" if where else "")


_RESERVED_ROW = rename(ops.LEDGER_ROW, kind=f"'{rules.RESERVE}'", pt="NULL", ct="NULL")
# a settlement's charge and release rows, in that order, each only if not zero (as ``ledger_rows``)
_SETTLED_ROWS = insert_after(
    rename(ops.LEDGER_ROW, kind="m.kind", amount="m.amount", pt="m.pt", ct="m.ct"),
    f"u, (VALUES ('{rules.CHARGE}', CAST(:charge AS BIGINT), CAST(:pt AS INTEGER), CAST(:ct AS INTEGER)),"
    f" ('{rules.RELEASE}', :release, NULL, NULL)) AS m (kind, amount, pt, ct)",
    "m.amount > 0",
)
RESERVE, RESERVE_PARAMS = numbered(
    f"WITH r AS ({ops.RESERVE} RETURNING id),"
    f" h AS ({insert_after(ops.ADD_RESERVATION, 'r')}),"
    f" l AS ({insert_after(_RESERVED_ROW, 'r')})"
    " SELECT EXISTS (SELECT 1 FROM r)"
)
# a refused reservation reports the balance as it is now (the statement above saw an older snapshot);
# a limited key (child key, spending limit) is reserved by the portable path (storage/limited_ops.py)
KEY_STATE, KEY_STATE_PARAMS = numbered(limited_ops.KEY_STATE)
# the reservation is taken only if it is this plain key's own and unchanged; the rest follows it
SETTLE_WITHIN, SETTLE_PARAMS = numbered(
    f"WITH d AS ({ops.DROP_RESERVATION} AND key_id = :key_id AND amount_msat = :reserved"
    " AND limit_key_id IS NULL RETURNING key_id),"
    f" u AS ({ops.APPLY_SETTLEMENT} AND id IN (SELECT key_id FROM d) RETURNING id),"
    f" l AS ({_SETTLED_ROWS})"
    " SELECT count(*) FROM d"
)


class _AlchemyExec:
    locking = True

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def run(self, sql: str, params: dict[str, Any]) -> int:
        return int(self.conn.execute(_text(sql), params).rowcount)

    def rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(_text(sql), params).all()]


_TEXTS: dict[str, Any] = {}


def _text(sql: str) -> Any:
    t = _TEXTS.get(sql)
    if t is None:
        t = _TEXTS[sql] = text(sql)
    return t


class EngineWriter:
    """``ledger_ops`` calls as one SQLAlchemy transaction each: the portable path."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def run(self, op: Callable[..., T], *args: Any) -> T:
        """One transaction; shielded, so a cancelled caller does not abort it half-way."""
        return await asyncio.shield(self._transaction(op, args))

    async def _transaction(self, op: Callable[..., T], args: tuple[Any, ...]) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(lambda sync_conn: op(_AlchemyExec(sync_conn), *args))


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """asyncpg resets a connection on every release, a round trip of its own. Our statements leave no
    session state behind (single statements, no SET, LISTEN or advisory locks): nothing to reset."""


def asyncpg_dsn(url: str) -> str:
    """SQLAlchemy's ``postgresql+asyncpg://…`` as the plain DSN asyncpg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgLedger:
    """``HotLedger`` on PostgreSQL. ``run(op, *args)`` is the portable path for any ``ledger_ops`` call."""

    def __init__(self, url: str, engine: AsyncEngine, pool_size: int) -> None:
        self.dsn = asyncpg_dsn(url)
        self.pool_size = pool_size
        self.general = EngineWriter(engine)
        self._pool: asyncio.Task[asyncpg.Pool] | None = None

    async def run(self, op: Callable[..., T], *args: Any) -> T:
        return await self.general.run(op, *args)

    async def reserve(
        self, key_id: int, amount: int, request_id: str, model: str, now: int, ttl_ms: int
    ) -> int | None:
        """Shielded, like every call here: a cancelled caller does not leave its call unknown."""
        args = (key_id, amount, request_id, model, now, ttl_ms)
        done = await asyncio.shield(self._reserve(*args))
        if done is not _GENERAL:
            return done  # type: ignore[no-any-return]
        return await self.general.run(ops.reserve, *args)

    async def settle(
        self,
        key_id: int,
        request_id: str,
        reserved: int,
        cost: int,
        model: str,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        now: int,
    ) -> rules.Settlement:
        args = (key_id, request_id, reserved, cost, model, prompt_tokens, completion_tokens, now)
        if cost <= reserved:  # an overrun reads the balance under a lock: the portable transaction
            done = await asyncio.shield(self._settle(*args))
            if done is not _GENERAL:
                return done  # type: ignore[no-any-return]
        return await self.general.run(ops.settle, *args)

    async def renew(self, request_ids: Sequence[str], expires_at: int) -> int:
        return await self.general.run(ops.renew, request_ids, expires_at)

    async def release_expired(self, now: int) -> int:
        return await self.general.run(ops.release_expired, now)

    async def _conn_pool(self) -> asyncpg.Pool:
        if self._pool is None:  # one creation shared by every first caller
            self._pool = asyncio.ensure_future(
                asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size, reset=_no_reset)
            )
        try:
            return await self._pool
        except Exception:
            self._pool = None  # the next call tries again
            raise

    async def _reserve(
        self, key_id: int, amount: int, request_id: str, model: str, now: int, ttl_ms: int
    ) -> Any:
        pool = await self._conn_pool()
        p = {"key_id": key_id, "amount": amount, "request_id": request_id, "model": model, "now": now,
             "expires_at": now + ttl_ms}  # fmt: skip
        if await pool.fetchval(RESERVE, *[p[n] for n in RESERVE_PARAMS]):
            return None
        row = await pool.fetchrow(KEY_STATE, *[p[n] for n in KEY_STATE_PARAMS])
        if row is None:
            return 0
        return _GENERAL if row[1] else int(row[0])

    async def _settle(
        self,
        key_id: int,
        request_id: str,
        reserved: int,
        cost: int,
        model: str,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        now: int,
    ) -> Any:
        s = rules.settle(reserved, cost, 0)
        pool = await self._conn_pool()
        p = {"key_id": key_id, "request_id": request_id, "reserved": reserved, "charge": s.charge,
             "release": s.release, "extra": 0, "held_charge": s.charge, "model": model,
             "pt": prompt_tokens, "ct": completion_tokens, "now": now}  # fmt: skip
        settled = await pool.fetchval(SETTLE_WITHIN, *[p[n] for n in SETTLE_PARAMS])
        return s if settled == 1 else _GENERAL  # the reservation was gone: the portable rules decide

    async def close(self) -> None:
        if self._pool is not None:
            pool = await self._pool
            await pool.close()
            self._pool = None
