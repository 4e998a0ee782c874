"""PostgreSQL's hot path: reserve and settle as one statement each, on a raw asyncpg pool.

Through SQLAlchemy every statement of ``ledger_ops.reserve`` / ``settle`` was a round trip plus the
ORM's per-statement work (9 statements and two BEGIN/COMMITs per request; measured in bench/: 273
req/s against 2,529 on SQLite). Here each is one data-modifying CTE, so one round trip that commits
on its own: all of its parts happen or none does.

The rules stay in ``routstr.core.ledger``: the settlement is computed in Python for the common case
(the reservation is still there and the cost fits in it) and the statement only applies it if that
case holds. Anything else (the sweeper released the reservation, the cost overran it) and every
other call take the portable path in ``ledger_ops`` through SQLAlchemy, one transaction each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from routstr.core import ledger as rules
from routstr.storage import ledger_ops
from routstr.storage.writer import EngineWriter

T = TypeVar("T")
_GENERAL = object()  # a fast path's answer: "not my case, take the portable path"

# $1 key_id, $2 amount, $3 request_id, $4 model, $5 now, $6 expires_at
RESERVE = f"""
WITH r AS (
  UPDATE api_keys SET balance_msat = balance_msat - $2, reserved_msat = reserved_msat + $2
  WHERE id = $1 AND balance_msat >= $2 AND NOT limited RETURNING id
), h AS (
  INSERT INTO reservations (request_id, key_id, amount_msat, created_at, expires_at)
  SELECT $3, id, $2, $5, $6 FROM r
), l AS (
  INSERT INTO ledger (key_id, kind, amount_msat, request_id, model, created_at)
  SELECT id, '{rules.RESERVE}', $2, $3, $4, $5 FROM r
)
SELECT EXISTS (SELECT 1 FROM r)
"""
# a refused reservation reports the balance as it is now (the statement above saw an older snapshot);
# a limited key (child key, spending limit) is reserved by the portable path (storage/limited_ops.py)
BALANCE = "SELECT balance_msat, limited FROM api_keys WHERE id = $1"

# $1 key_id, $2 request_id, $3 reserved, $4 charge, $5 release, $6 model, $7 prompt, $8 completion, $9 now
SETTLE_WITHIN = f"""
WITH d AS (
  DELETE FROM reservations WHERE request_id = $2 AND key_id = $1 AND amount_msat = $3
    AND limit_key_id IS NULL RETURNING key_id
), u AS (
  UPDATE api_keys SET balance_msat = balance_msat + $5, reserved_msat = reserved_msat - $4 - $5,
    total_spent_msat = total_spent_msat + $4, total_requests = total_requests + 1
  WHERE id = (SELECT key_id FROM d) RETURNING id
), l AS (
  INSERT INTO ledger (key_id, kind, amount_msat, request_id, model, prompt_tokens, completion_tokens,
                      created_at)
  SELECT u.id, m.kind, m.amount, $2, $6, m.pt, m.ct, $9
  FROM u, (VALUES ('{rules.CHARGE}', $4::bigint, $7::integer, $8::integer),
                  ('{rules.RELEASE}', $5::bigint, NULL, NULL)) AS m (kind, amount, pt, ct)
  WHERE m.amount > 0
)
SELECT count(*) FROM d
"""


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """asyncpg resets a connection on every release, a round trip of its own. Our statements leave no
    session state behind (single statements, no SET, LISTEN or advisory locks): nothing to reset."""


def asyncpg_dsn(url: str) -> str:
    """SQLAlchemy's ``postgresql+asyncpg://…`` as the plain DSN asyncpg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgWriter:
    """``run(op, *args)`` like the other writers; reserve and settle take their one-statement form."""

    def __init__(self, url: str, engine: AsyncEngine, pool_size: int) -> None:
        self.dsn = asyncpg_dsn(url)
        self.pool_size = pool_size
        self.general = EngineWriter(engine)
        self._pool: asyncio.Task[asyncpg.Pool] | None = None
        self._fast: dict[Callable[..., Any], Callable[..., Awaitable[Any]]] = {
            ledger_ops.reserve: self._reserve,
            ledger_ops.settle: self._settle,
        }

    async def run(self, op: Callable[..., T], *args: Any, quiet: bool = False) -> T:
        """Shielded, so a cancelled caller does not leave its call unknown: it completes either way."""
        fast = self._fast.get(op)
        if fast is not None:
            result = await asyncio.shield(fast(*args))
            if result is not _GENERAL:
                return result  # type: ignore[no-any-return]
        return await self.general.run(op, *args)

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
        if await pool.fetchval(RESERVE, key_id, amount, request_id, model, now, now + ttl_ms):
            return None
        row = await pool.fetchrow(BALANCE, key_id)
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
        if cost > reserved:
            return _GENERAL  # an overrun reads the balance under a lock: the portable transaction
        s = rules.settle(reserved, cost, 0)
        pool = await self._conn_pool()
        settled = await pool.fetchval(
            SETTLE_WITHIN, key_id, request_id, reserved, s.charge, s.release, model, prompt_tokens,
            completion_tokens, now,
        )  # fmt: skip
        return s if settled == 1 else _GENERAL  # the reservation was gone: the portable rules decide

    async def close(self) -> None:
        if self._pool is not None:
            pool = await self._pool
            await pool.close()
            self._pool = None
