"""The pure rules: window edges, reset and retry-after, decisions, headers, the 429 and overrides."""

from __future__ import annotations

from routstr.core.errors import RateLimited
from routstr.limits import (
    DEFAULT_LIMITS,
    HOUR_S,
    MINUTE_S,
    Bound,
    LimitPolicy,
    Limits,
    decide,
    seconds_until_reset,
    window_reset,
    window_start,
)
from routstr.limits.rules import allow_all, window_index


def test_defaults_from_the_issue() -> None:
    assert DEFAULT_LIMITS == Limits(requests_per_minute=1000, tokens_per_hour=1_000_000, concurrent=10)
    assert not DEFAULT_LIMITS.unlimited and Limits(0, 0, 0).unlimited


def test_window_edges() -> None:
    assert window_start(120.0, MINUTE_S) == 120 and window_reset(120.0, MINUTE_S) == 180
    assert window_start(179.999, MINUTE_S) == 120 and window_reset(179.999, MINUTE_S) == 180
    assert window_start(180.0, MINUTE_S) == 180 and window_reset(180.0, MINUTE_S) == 240
    assert window_index(7199.9, HOUR_S) == 1 and window_index(7200.0, HOUR_S) == 2
    assert window_reset(3600.0 * 5 + 1, HOUR_S) == 3600 * 6


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert seconds_until_reset(120.0, MINUTE_S) == 60
    assert seconds_until_reset(150.2, MINUTE_S) == 30  # 29.8 s rounds up
    assert seconds_until_reset(179.999, MINUTE_S) == 1
    assert seconds_until_reset(3600.0 + 10, HOUR_S) == 3590


def test_allowed_decision_and_headers() -> None:
    d = decide(Limits(requests_per_minute=5), None, 2, now=130.0)
    assert d.allowed and d.bound is None and d.remaining == 3 and d.reset == 180 and d.retry_after == 0
    assert d.headers() == {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "3", "X-RateLimit-Reset": "180"}


def test_refusals_name_their_bound_and_wait() -> None:
    lim = Limits(requests_per_minute=5, tokens_per_hour=100, concurrent=2)
    r = decide(lim, Bound.REQUESTS, 5, now=130.0)
    assert (r.allowed, r.remaining, r.retry_after, r.reset) == (False, 0, 50, 180)
    t = decide(lim, Bound.TOKENS, 1, now=3600.0 + 130)
    assert (t.allowed, t.remaining, t.retry_after) == (False, 4, 3600 - 130)
    c = decide(lim, Bound.CONCURRENCY, 1, now=130.0)
    assert (c.allowed, c.retry_after) == (False, 1)
    assert r.headers()["Retry-After"] == "50" and r.headers()["X-RateLimit-Remaining"] == "0"


def test_error_is_429_rate_limit_exceeded() -> None:
    d = decide(Limits(tokens_per_hour=10), Bound.TOKENS, 0, now=3000.0)
    err = d.error()
    assert isinstance(err, RateLimited) and err.status == 429
    body = err.envelope()["error"]
    assert body["type"] == "rate_limit_exceeded" and body["code"] == "rate_limit_exceeded"
    assert body["details"] == {"limit": "tokens_per_hour", "retry_after": 600}
    assert err.headers["Retry-After"] == "600" and err.headers["X-RateLimit-Limit"] == "1000"


def test_unlimited_requests_leave_out_the_headers() -> None:
    assert allow_all(Limits(0, 0, 0), 100.0).headers() == {}
    assert decide(Limits(0, 5, 0), Bound.TOKENS, 0, 100.0).headers() == {"Retry-After": "3500"}


def test_overrides_fall_back_to_defaults() -> None:
    vip = Limits(requests_per_minute=10_000, tokens_per_hour=0, concurrent=50)
    policy = LimitPolicy(overrides={7: vip})
    assert policy.limits_for(7) is vip and policy.limits_for(8) == DEFAULT_LIMITS
    small = LimitPolicy(default=Limits(1, 1, 1))
    assert small.limits_for(7) == Limits(1, 1, 1)
