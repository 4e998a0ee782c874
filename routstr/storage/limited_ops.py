"""Reserve, settle and sweep for limited keys (child keys, keys with a spending limit), as portable SQL.

A limited key's money is its payer's (``key_limits.payer_id``: a child's parent, or itself); its
``key_limits`` row bounds what it may hold and spend (rules in ``routstr.core.budgets``). The plain
statements of ``ledger_ops`` skip limited keys (``api_keys.limited``), so a plain key's path is as it
was, and a limited key's request reaches these functions only after the plain statement found
nothing to do. Everything a call changes (the payer's balance, the limit's counters, the reservation
and the payer's ledger rows) is one transaction, so the limit holds however many requests and
processes race: ``spent + reserved <= balance_limit`` and the payer's balance never below zero.

Lock order, the same in every transaction (PostgreSQL must never wait in a cycle): the reservation
row, then ``key_limits`` rows, then ``api_keys`` rows. The limit row is read ``FOR UPDATE`` before the
payer's row is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from routstr.core import budgets
from routstr.core import ledger as rules
from routstr.storage import ledger_ops as ops

KEY_STATE = "SELECT balance_msat, limited FROM api_keys WHERE id = :key_id"
BUDGET = (
    "SELECT key_id, payer_id, balance_limit_msat, limit_reset, resets_at, spent_msat, reserved_msat,"
    " valid_until FROM key_limits WHERE key_id = :key_id"
)
PAYER_RESERVE = (
    "UPDATE api_keys SET balance_msat = balance_msat - :amount, reserved_msat = reserved_msat + :amount"
    " WHERE id = :key_id AND balance_msat >= :amount"
)
HOLD = (
    "UPDATE key_limits SET reserved_msat = reserved_msat + :amount, spent_msat = :spent,"
    " resets_at = :resets_at WHERE key_id = :key_id"
)
ADD_RESERVATION = (
    "INSERT INTO reservations (request_id, key_id, amount_msat, created_at, expires_at, limit_key_id)"
    " VALUES (:request_id, :payer_id, :amount, :now, :expires_at, :key_id)"
)
CLOSE = (
    "UPDATE key_limits SET reserved_msat = reserved_msat - :held, spent_msat = :spent,"
    " resets_at = :resets_at, total_spent_msat = total_spent_msat + :charge,"
    " total_requests = total_requests + 1 WHERE key_id = :key_id"
)
UNHOLD = "UPDATE key_limits SET reserved_msat = reserved_msat - :amount WHERE key_id = :key_id"


def _lock(x: ops.Exec, sql: str) -> str:
    return sql + (" FOR UPDATE" if x.locking else "")


def budget(x: ops.Exec, key_id: int) -> budgets.Budget | None:
    """The key's limit row, locked for this transaction (None: the key has no limit)."""
    rows = x.rows(_lock(x, BUDGET), {"key_id": key_id})
    if not rows:
        return None
    k, payer, limit, period, resets_at, spent, reserved, valid = rows[0]
    return budgets.Budget(int(k), int(payer), limit, period, resets_at, int(spent), int(reserved), valid)


def is_limited(x: ops.Exec, key_id: int) -> bool:
    rows = x.rows(KEY_STATE, {"key_id": key_id})
    return bool(rows and rows[0][1])


def reserve(
    x: ops.Exec, key_id: int, amount: int, request_id: str, model: str, now: int, ttl_ms: int
) -> int | None:
    """``ledger_ops.reserve`` after its plain statement took nothing: None if reserved now, else the
    available amount that was too small (a ``LimitShort`` when the key's limit was the shorter)."""
    rows = x.rows(KEY_STATE, {"key_id": key_id})
    if not rows:
        return 0
    if not rows[0][1]:  # a plain key whose balance was short
        return ops.available(x, key_id)
    b = budget(x, key_id)
    if b is None:  # marked limited, limit row gone: nothing may be spent through it
        return 0
    if b.expired(now):
        raise budgets.expired_error(int(b.valid_until or 0))
    spent, resets_at = b.current(now)
    room = b.room(now)
    if room is not None and room < amount:
        payer = ops.available(x, b.payer_id)
        return budgets.LimitShort(room, b, now) if room <= payer else payer
    if x.run(PAYER_RESERVE, {"amount": amount, "key_id": b.payer_id}) != 1:
        payer = ops.available(x, b.payer_id)
        return payer if room is None or payer < room else budgets.LimitShort(room, b, now)
    x.run(HOLD, {"amount": amount, "spent": spent, "resets_at": resets_at, "key_id": key_id})
    x.run(ADD_RESERVATION, {"request_id": request_id, "payer_id": b.payer_id, "amount": amount, "now": now,
                            "expires_at": now + ttl_ms, "key_id": key_id})  # fmt: skip
    x.run(ops.LEDGER_ROW, ops._row(b.payer_id, rules.RESERVE, amount, request_id, model, now))
    return None


def settle(
    x: ops.Exec,
    key_id: int,
    request_id: str,
    held: int,
    cost: int,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    now: int,
) -> rules.Settlement:
    """Close a limited key's request whose reservation of ``held`` msat was just taken (0: the sweep
    gave it back already): the payer is charged, the limit's counters follow. An overrun takes only
    what both the payer's balance and the limit's room still allow."""
    b = budget(x, key_id)
    if b is None:  # cannot happen while reservations exist; settle on the key itself, as before
        return ops.settle_plain(
            x, key_id, request_id, held, cost, model, prompt_tokens, completion_tokens, now
        )
    spent, resets_at = b.current(now)
    extra_room = 0
    if cost > held:
        # the held part becomes charge: what may come on top is the room left with it counted
        extra_room = budgets.capped(ops.available(x, b.payer_id), b.room(now))
    s = rules.settle(held, cost, extra_room)
    x.run(ops.APPLY_SETTLEMENT, {"release": s.release, "extra": s.extra, "held_charge": s.charge - s.extra,
                                 "charge": s.charge, "key_id": b.payer_id})  # fmt: skip
    x.run(CLOSE, {"held": held, "spent": spent + s.charge, "resets_at": resets_at, "charge": s.charge,
                  "key_id": key_id})  # fmt: skip
    ops.ledger_rows(x, b.payer_id, request_id, model, now, s, prompt_tokens, completion_tokens)
    return s


def unhold(x: ops.Exec, expired: Sequence[tuple[Any, ...]]) -> None:
    """The sweep's share: expired reservations of limited keys leave their counters (sorted, so two
    sweeps never lock the same rows in opposite orders)."""
    for key_id, amount in sorted((int(k), int(a)) for _, _, a, k in expired if k is not None):
        x.run(UNHOLD, {"amount": amount, "key_id": key_id})
