"""Spending limits of keys (child keys, and keys created with a limit): pure rules, no I/O.

A limited key spends the balance of its *payer* (a child key's parent, or the key itself) and at
most ``balance_limit`` msat of it per period. Its counters are ``spent`` (charged this period) and
``reserved`` (held for its requests in flight); the rule the storage keeps at every commit is

    spent + reserved <= balance_limit        (no limit: no bound but the payer's balance)

A period (``daily``, ``weekly``, ``monthly``) ends at a calendar boundary in UTC (midnight, Monday
midnight, the 1st of the month): ``spent`` goes back to 0 then. The reset is applied lazily by the
next statement that reads the counters, so no job has to run for it. Reservations in flight are not
reset: they are charged (or released) in the period in which they settle.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from routstr.core.errors import ApiError, AuthenticationFailed, InsufficientBalance, InvalidRequest

PERIODS = ("daily", "weekly", "monthly")
MAX_LIMIT_MSAT = 2**62  # a limit beyond any balance still fits a signed 64-bit column
MAX_VALIDITY_S = 253_402_300_799  # 9999-12-31, as Key-Expiry-Time: later is milliseconds by mistake
MAX_COUNT = 100  # child keys per call


@dataclass(frozen=True, slots=True)
class Limits:
    """What a limited key may spend: ``limit_msat`` per ``period``, until ``valid_until`` (unix ms)."""

    limit_msat: int | None = None
    period: str | None = None
    valid_until: int | None = None


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be an integer from {low} to {high}", details={"param": name})
    return value


def parse_limits(body: dict[str, Any], now_ms: int) -> Limits:
    """``balance_limit`` (msat), ``balance_limit_reset`` and ``validity_date`` (unix seconds) of a
    request body; absent or null: none. Anything else is a 400 naming the field."""
    limit = _integer(body, "balance_limit", 0, MAX_LIMIT_MSAT)
    period = body.get("balance_limit_reset")
    if period is not None:
        if period not in PERIODS:
            raise InvalidRequest(
                f"balance_limit_reset must be one of {', '.join(PERIODS)} or null",
                details={"param": "balance_limit_reset"},
            )
        if limit is None:
            raise InvalidRequest(
                "balance_limit_reset needs a balance_limit to reset", details={"param": "balance_limit_reset"}
            )
    valid_s = _integer(body, "validity_date", 0, MAX_VALIDITY_S)
    if valid_s is not None and valid_s * 1000 <= now_ms:
        raise InvalidRequest(
            "validity_date (unix seconds) is in the past: the key would be refused at once",
            details={"param": "validity_date"},
        )
    return Limits(limit, period, None if valid_s is None else valid_s * 1000)


def parse_count(body: dict[str, Any]) -> int:
    """How many child keys a call makes: ``count``, 1 if absent."""
    count = _integer(body, "count", 1, MAX_COUNT)
    return 1 if count is None else count


def next_reset(period: str, now_ms: int) -> int:
    """The first period boundary after ``now_ms`` (unix ms, UTC)."""
    day = datetime.fromtimestamp(now_ms / 1000, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        nxt = day + timedelta(days=1)
    elif period == "weekly":
        nxt = day + timedelta(days=7 - day.weekday())
    elif period == "monthly":
        nxt = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown period {period!r}")
    return int(nxt.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Budget:
    """A limited key's row: who pays, its limit and its counters as stored."""

    key_id: int
    payer_id: int
    limit_msat: int | None
    period: str | None
    resets_at: int | None  # unix ms of the next reset (None: never resets)
    spent_msat: int
    reserved_msat: int
    valid_until: int | None  # unix ms after which the key is refused (None: no end)

    @property
    def is_child(self) -> bool:
        return self.payer_id != self.key_id

    def current(self, now_ms: int) -> tuple[int, int | None]:
        """(spent, resets_at) as of ``now_ms``: a period that ended counts from 0 again."""
        if self.resets_at is not None and self.period and now_ms >= self.resets_at:
            return 0, next_reset(self.period, now_ms)
        return self.spent_msat, self.resets_at

    def expired(self, now_ms: int) -> bool:
        return self.valid_until is not None and now_ms >= self.valid_until

    def room(self, now_ms: int) -> int | None:
        """What the key may still reserve (or be charged beyond what it holds) this period; None: no
        limit."""
        if self.limit_msat is None:
            return None
        spent, _ = self.current(now_ms)
        return max(self.limit_msat - spent - self.reserved_msat, 0)


class LimitShort(int):
    """A refused reservation's available amount when the key's limit, not its payer's balance, was
    what fell short: an int like any other, carrying what the refusal should say."""

    budget: Budget
    now_ms: int

    def __new__(cls, room: int, budget: Budget, now_ms: int) -> LimitShort:
        obj = super().__new__(cls, room)
        obj.budget = budget
        obj.now_ms = now_ms
        return obj


def capped(payer_available: int, room: int | None) -> int:
    """What a limited key can spend now: its payer's available balance within its room."""
    return payer_available if room is None else min(payer_available, room)


def refusal(available: int, required: int) -> ApiError:
    """The 402 for a reservation that did not fit: in the limit's words when the limit was short."""
    if not isinstance(available, LimitShort):
        return InsufficientBalance(available, required)
    b = available.budget
    spent, resets_at = b.current(available.now_ms)
    when = (
        f"; it resets {b.period}, next at {iso(resets_at)}"
        if resets_at is not None
        else "; it does not reset"
    )
    err = InsufficientBalance(int(available), required)
    err.code = "balance_limit_exceeded"  # routstr-sdk's name (CoreErrorCode.BALANCE_LIMIT_EXCEEDED)
    err.message = (
        f"This key's balance_limit leaves {int(available)} msat: {spent} of {b.limit_msat} msat spent and "
        f"{b.reserved_msat} held for requests in flight{when}. This request needs up to {required} msat"
    )
    err.details.update(
        balance_limit=b.limit_msat,
        balance_limit_spent=spent,
        balance_limit_reset=b.period,
        balance_limit_resets_at=None if resets_at is None else resets_at // 1000,
        reserved=b.reserved_msat,
    )
    return err


def expired_error(valid_until_ms: int) -> ApiError:
    return AuthenticationFailed(
        f"This key expired at {iso(valid_until_ms)} (its validity_date)",
        code="key_expired",
        details={"validity_date": valid_until_ms // 1000},
    )


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
