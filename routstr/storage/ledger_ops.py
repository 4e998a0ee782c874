"""The hot-path money statements: reserve and settle (and the sweep and lease renewal of their
reservations), as plain SQL over a tiny executor.

They run on every billed request, so they are written once, here, as portable SQL with named
parameters; the hot ledger of each backend (``hot_ledger.py``) runs them: on SQLite through a writer
thread or inline (``writer.py``), on PostgreSQL through SQLAlchemy, or composed into one statement
per operation from these same texts (``pg_writer.py``). Each function is one transaction's worth of
work; the ledger row of every movement is written beside the balance change it records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from routstr.core import ledger as rules
from routstr.storage import limited_ops

# a limited key (a child key, a key with a spending limit) never matches: limited_ops takes it over
RESERVE = (
    "UPDATE api_keys SET balance_msat = balance_msat - :amount, reserved_msat = reserved_msat + :amount"
    " WHERE id = :key_id AND balance_msat >= :amount AND NOT limited"
)
ADD_RESERVATION = (
    "INSERT INTO reservations (request_id, key_id, amount_msat, created_at, expires_at)"
    " VALUES (:request_id, :key_id, :amount, :now, :expires_at)"
)
LEDGER_ROW = (
    "INSERT INTO ledger (key_id, kind, amount_msat, request_id, model, prompt_tokens, completion_tokens,"
    " created_at) VALUES (:key_id, :kind, :amount, :request_id, :model, :pt, :ct, :now)"
)
BALANCE = "SELECT balance_msat FROM api_keys WHERE id = :key_id"
DROP_RESERVATION = "DELETE FROM reservations WHERE request_id = :request_id"
# a settlement's rows always name the model; the sweep's release (``release_expired``) never does
SETTLED = (
    f"SELECT 1 FROM ledger WHERE request_id = :request_id AND (kind = '{rules.CHARGE}'"
    f" OR (kind = '{rules.RELEASE}' AND model IS NOT NULL)) LIMIT 1"
)
NOTHING = rules.Settlement(charge=0, release=0, extra=0, unpaid=0)
APPLY_SETTLEMENT = (
    "UPDATE api_keys SET balance_msat = balance_msat + :release - :extra,"
    " reserved_msat = reserved_msat - :held_charge - :release,"
    " total_spent_msat = total_spent_msat + :charge, total_requests = total_requests + 1"
    " WHERE id = :key_id"
)
APPLY_OWN = APPLY_SETTLEMENT + " AND NOT limited"  # a limited key's money is its payer's: limited_ops
EXPIRED = (
    "SELECT request_id, key_id, amount_msat, limit_key_id FROM reservations WHERE expires_at < :now"
    " LIMIT :limit"
)
RENEW = "UPDATE reservations SET expires_at = :expires_at WHERE request_id IN ({refs})"
RENEW_MAX = 512  # refs per statement: within SQLite's oldest limit of 999 bound variables
RELEASE_HELD = (
    "UPDATE api_keys SET balance_msat = balance_msat + :amount, reserved_msat = reserved_msat - :amount"
    " WHERE id = :key_id"
)


class Exec(Protocol):
    """What the statements need from a connection: run one, or read rows."""

    locking: bool  # the database needs SELECT … FOR UPDATE to lock a row it reads (PostgreSQL)

    def run(self, sql: str, params: dict[str, Any]) -> int: ...

    def rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]: ...


def _row(key_id: int, kind: str, amount: int, request_id: str | None, model: str | None, now: int,
         pt: int | None = None, ct: int | None = None) -> dict[str, Any]:  # fmt: skip
    return {"key_id": key_id, "kind": kind, "amount": amount, "request_id": request_id, "model": model,
            "pt": pt, "ct": ct, "now": now}  # fmt: skip


def available(x: Exec, key_id: int) -> int:
    rows = x.rows(BALANCE + (" FOR UPDATE" if x.locking else ""), {"key_id": key_id})
    return int(rows[0][0]) if rows else 0


def reserve(
    x: Exec, key_id: int, amount: int, request_id: str, model: str, now: int, ttl_ms: int
) -> int | None:
    """Hold ``amount`` msat; None if done, else the available balance that was too small.

    One conditional UPDATE: it takes the whole amount or nothing and cannot overdraw, however many
    requests race for the same balance. A limited key is reserved by ``limited_ops`` instead.
    """
    if x.run(RESERVE, {"amount": amount, "key_id": key_id}) != 1:
        return limited_ops.reserve(x, key_id, amount, request_id, model, now, ttl_ms)
    x.run(ADD_RESERVATION, {"request_id": request_id, "key_id": key_id, "amount": amount, "now": now,
                            "expires_at": now + ttl_ms})  # fmt: skip
    x.run(LEDGER_ROW, _row(key_id, rules.RESERVE, amount, request_id, model, now))
    return None


def settle(
    x: Exec,
    key_id: int,
    request_id: str,
    reserved: int,
    cost: int,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    now: int,
) -> rules.Settlement:
    """Close a reservation: charge the cost, release the rest (rules in ``routstr.core.ledger``).
    A limited key's is closed by ``limited_ops``: its guarded UPDATE here changes nothing. Closing a
    request a second time changes nothing (``NOTHING``): only a request that was never settled is
    charged once its reservation is gone."""
    if x.run(DROP_RESERVATION, {"request_id": request_id}) != 1:
        if x.rows(SETTLED, {"request_id": request_id}):
            return NOTHING  # settled already: a repeated call must not charge again
        reserved = 0  # the expiry sweeper gave it back already: charge only what is free now
    # an overrun reads a balance under a lock: a limited key's limit row must be locked before it
    if not (cost > reserved and limited_ops.is_limited(x, key_id)):
        s = _apply(
            x, APPLY_OWN, key_id, request_id, reserved, cost, model, prompt_tokens, completion_tokens, now
        )
        if s is not None:
            return s
    return limited_ops.settle(
        x, key_id, request_id, reserved, cost, model, prompt_tokens, completion_tokens, now
    )


def settle_plain(
    x: Exec,
    key_id: int,
    request_id: str,
    reserved: int,
    cost: int,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    now: int,
) -> rules.Settlement:
    """``settle`` on the key's own balance, whatever the key, its reservation already taken."""
    s = _apply(
        x, APPLY_SETTLEMENT, key_id, request_id, reserved, cost, model, prompt_tokens, completion_tokens, now
    )
    assert s is not None
    return s


def _apply(
    x: Exec,
    apply: str,
    key_id: int,
    request_id: str,
    reserved: int,
    cost: int,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    now: int,
) -> rules.Settlement | None:
    """Charge and release on the key's row with ``apply``; None if that statement matched no row."""
    s = rules.settle(reserved, cost, available(x, key_id) if cost > reserved else 0)
    params = {"release": s.release, "extra": s.extra, "held_charge": s.charge - s.extra, "charge": s.charge,
              "key_id": key_id}  # fmt: skip
    if x.run(apply, params) != 1 and apply is APPLY_OWN:
        return None
    ledger_rows(x, key_id, request_id, model, now, s, prompt_tokens, completion_tokens)
    return s


def ledger_rows(
    x: Exec,
    key_id: int,
    request_id: str,
    model: str,
    now: int,
    s: rules.Settlement,
    prompt_tokens: int | None,
    completion_tokens: int | None,
) -> None:
    """The ledger rows of a settlement: the extra reserved, the charge, the release."""
    if s.extra:
        x.run(LEDGER_ROW, _row(key_id, rules.RESERVE, s.extra, request_id, model, now))
    if s.charge:
        x.run(LEDGER_ROW, _row(key_id, rules.CHARGE, s.charge, request_id, model, now, prompt_tokens,
                               completion_tokens))  # fmt: skip
    if s.release:
        x.run(LEDGER_ROW, _row(key_id, rules.RELEASE, s.release, request_id, model, now))


def release_expired(x: Exec, now: int, limit: int = 500) -> int:
    """Give back reservations whose lease ran out: a running request's is renewed, so an expired one's
    request is dead (its process crashed or was killed). The reservations are taken first, then the
    limits' counters, then the balances: the lock order of every other transaction."""
    expired = x.rows(EXPIRED, {"now": now, "limit": limit})
    taken = [r for r in expired if x.run(DROP_RESERVATION, {"request_id": r[0]}) == 1]
    limited_ops.unhold(x, taken)
    for request_id, key_id, amount, _ in taken:
        x.run(RELEASE_HELD, {"amount": amount, "key_id": key_id})
        x.run(LEDGER_ROW, _row(key_id, rules.RELEASE, amount, request_id, None, now))
    return len(taken)


def renew(x: Exec, request_ids: Sequence[str], expires_at: int) -> int:
    """Push the expiry of these reservations to ``expires_at``: the lease of requests still running
    (``routstr.billing.leases``), so the sweep only gives back a dead request's. One statement; the
    IN list is padded to a power of two (repeating the last ref) so only a handful of statements are
    ever prepared. Returns how many reservations were still there."""
    n = len(request_ids)
    if not n:
        return 0
    if n > RENEW_MAX:
        raise ValueError(f"renew takes at most {RENEW_MAX} refs per call, got {n}")
    size = 1 << (n - 1).bit_length()
    params: dict[str, Any] = {f"r{i}": request_ids[min(i, n - 1)] for i in range(size)}
    params["expires_at"] = expires_at
    return x.run(RENEW.format(refs=", ".join(f":r{i}" for i in range(size))), params)
