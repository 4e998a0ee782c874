"""Spending limits' pure rules: period boundaries, room, refusals, and what a request may ask for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from routstr.core.budgets import Budget, LimitShort, next_reset, parse_count, parse_limits, refusal
from routstr.core.errors import InvalidRequest


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("period", "now", "boundary"),
    [
        ("daily", "2026-12-05T17:30:00", "2026-12-06T00:00:00"),
        ("daily", "2026-12-31T23:59:59", "2027-01-01T00:00:00"),
        ("daily", "2026-12-06T00:00:00", "2026-12-07T00:00:00"),  # at a boundary: the next one
        ("weekly", "2026-12-05T17:30:00", "2026-12-07T00:00:00"),  # a Saturday: Monday next
        ("weekly", "2026-12-07T00:00:00", "2026-12-14T00:00:00"),  # a Monday at midnight
        ("monthly", "2026-12-05T17:30:00", "2027-01-01T00:00:00"),
        ("monthly", "2027-01-31T12:00:00", "2027-02-01T00:00:00"),
        ("monthly", "2028-02-29T12:00:00", "2028-03-01T00:00:00"),
    ],
)
def test_periods_end_at_utc_calendar_boundaries(period: str, now: str, boundary: str):
    assert next_reset(period, ms(now)) == ms(boundary)


def test_room_counts_spent_and_held_and_a_new_period_starts_from_zero():
    b = Budget(2, 1, 1_000, "daily", ms("2026-12-06T00:00:00"), 600, 300, None)
    assert b.room(ms("2026-12-05T12:00:00")) == 100
    assert b.current(ms("2026-12-06T00:00:00")) == (0, ms("2026-12-07T00:00:00"))
    assert b.room(ms("2026-12-06T08:00:00")) == 700  # 300 still held from the day before
    assert Budget(2, 1, None, None, None, 5, 5, None).room(0) is None
    assert Budget(2, 1, 10, None, None, 8, 5, None).room(0) == 0  # never negative


def test_a_refusal_says_the_limit_when_the_limit_was_short():
    b = Budget(2, 1, 3_000, "weekly", ms("2026-12-07T00:00:00"), 2_500, 0, None)
    err = refusal(LimitShort(500, b, ms("2026-12-05T00:00:00")), 900)
    assert (err.status, err.type, err.code) == (402, "insufficient_balance", "balance_limit_exceeded")
    assert err.details["available"] == 500 and err.details["required"] == 900
    assert err.details["balance_limit"] == 3_000 and err.details["balance_limit_spent"] == 2_500
    assert "balance_limit leaves 500 msat" in err.message and "2026-12-07T00:00:00Z" in err.message
    plain = refusal(500, 900)
    assert plain.code == "payment_required"
    assert plain.message == "Insufficient balance. Current: 500 msat, Required: 900 msat"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"balance_limit": -1}, "balance_limit"),
        ({"balance_limit": 1.5}, "balance_limit"),
        ({"balance_limit": "100"}, "balance_limit"),
        ({"balance_limit": True}, "balance_limit"),
        ({"balance_limit": 2**63}, "balance_limit"),
        ({"balance_limit": 5, "balance_limit_reset": "hourly"}, "balance_limit_reset"),
        ({"balance_limit_reset": "daily"}, "balance_limit_reset"),
        ({"validity_date": 1_000}, "validity_date"),
        ({"validity_date": 1_767_225_600_000}, "validity_date"),  # milliseconds, by mistake
    ],
)
def test_bad_limits_are_400_naming_the_field(body: dict, param: str):
    with pytest.raises(InvalidRequest) as e:
        parse_limits(body, ms("2026-12-05T00:00:00"))
    assert e.value.details["param"] == param


def test_limits_and_count_as_sent():
    now = ms("2026-12-05T00:00:00")
    limits = parse_limits(
        {"balance_limit": 0, "balance_limit_reset": "monthly", "validity_date": 1_900_000_000}, now
    )
    assert (limits.limit_msat, limits.period, limits.valid_until) == (0, "monthly", 1_900_000_000_000)
    assert parse_limits({"balance_limit": None, "validity_date": None}, now).limit_msat is None
    assert parse_count({}) == 1 and parse_count({"count": 100}) == 100
    for bad in (0, 101, "2", True, 2.0):
        with pytest.raises(InvalidRequest):
            parse_count({"count": bad})
