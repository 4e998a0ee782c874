"""The hot ledger: the money operations every billed request makes, by name, one implementation per backend.

Billing and the jobs call only these; each operation is one transaction whose SQL is written once in
``ledger_ops.py`` (and ``limited_ops.py``, which ``reserve`` and ``settle`` hand a limited key to: a
child key or a key with a spending limit goes through the same two calls). How a backend runs them
fast is its own business, decided by the operation and what the ledger itself can see:

* SQLite (``writer.SqliteLedger``): a writer thread committing concurrent calls together, or inline
  on the event loop when no other request of this process is between reserve and settle.
* PostgreSQL (``pg_writer.PgLedger``): ``reserve`` and ``settle`` as one statement each on an
  asyncpg pool in their common case, composed from the same texts; everything else through
  SQLAlchemy, one transaction per call.

Every call that reached the database completes even if its caller is cancelled: a settlement is never
lost half-way. ``tests/storage/test_hot_ledger_behaviour.py`` runs the same behaviour against both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from routstr.core.ledger import Settlement
from routstr.storage.ledger_ops import RENEW_MAX

__all__ = ["RENEW_MAX", "HotLedger"]


class HotLedger(Protocol):
    async def reserve(
        self, key_id: int, amount: int, request_id: str, model: str, now: int, ttl_ms: int
    ) -> int | None:
        """Hold ``amount`` msat for the request ``request_id`` until ``now + ttl_ms`` (its lease):
        None if held, else the available amount that was too small (a ``budgets.LimitShort`` when a
        spending limit was the shorter). Never overdraws, however many calls race."""

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
    ) -> Settlement:
        """Close the request's reservation of ``reserved`` msat: charge ``cost``, release the rest (at
        cost 0 this is the release of a failed request). A reservation the sweep gave back already is
        charged from what is free now; a request settled already is not charged again."""

    async def renew(self, request_ids: Sequence[str], expires_at: int) -> int:
        """Push the lease of these running requests' reservations (at most ``RENEW_MAX``) to
        ``expires_at``; how many were still there."""

    async def release_expired(self, now: int) -> int:
        """Give back reservations whose lease ran out before ``now`` (their request died); how many."""

    async def close(self) -> None: ...
