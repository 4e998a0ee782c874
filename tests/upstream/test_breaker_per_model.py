"""Issue 14, items 7 and 10: a failing model cools down alone (its provider's other models keep
answering), a 429's Retry-After is honoured for that (provider, model), and when every offer is
cooling down the least recently failed one is still tried: a breaker never turns the only upstream off.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from routstr.upstream.breaker import MAX_RETRY_AFTER_S, MAX_TRACKED_MODELS, Breaker, retry_after_seconds
from routstr.upstream.providers import Provider, route
from routstr.upstream.spec import ProviderSpec


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _provider(name: str, clock: Clock, fee: str = "0", kind: str = "openai") -> Provider:
    spec = ProviderSpec(name, "http://x", fee=Decimal(fee), kind=kind)
    return Provider(spec, client=None, breaker=Breaker(3, 30, clock))  # type: ignore[arg-type]


def test_a_failing_model_cools_down_alone():
    clock = Clock()
    b = Breaker(threshold=3, cooldown_s=30, clock=clock)
    for _ in range(10):
        b.failure("broken")
    assert not b.available("broken")
    assert b.available("gpt-4o-mini") and b.available()  # the provider and its other models: fine
    assert not b.is_open  # /ready, the metrics and the dashboard see a usable provider
    clock.now = 30
    assert b.available("broken")  # the cooldown is over: one probe
    b.attempt("broken")
    assert not b.available("broken") and b.available("gpt-4o-mini")
    b.success("broken")
    assert b.available("broken") and b.models == {}


def test_failures_below_the_threshold_and_a_success_in_between_do_not_open():
    b = Breaker(threshold=3, cooldown_s=30, clock=Clock())
    b.failure("m")
    b.failure("m")
    b.success("m")
    b.failure("m")
    b.failure("m")
    assert b.available("m")


def test_connection_failures_count_per_provider_whatever_the_model():
    clock = Clock()
    b = Breaker(threshold=3, cooldown_s=30, clock=clock)
    for model in ("a", "b", "c"):
        b.unreachable(model)
    assert b.is_open and not b.available() and not b.available("d")
    clock.now = 30
    b.attempt("d")  # the provider's probe: nobody else goes there meanwhile
    assert not b.available("a")
    b.failure("d")  # it answered (with a 500): the connection is back, model d is failing
    assert not b.is_open and b.available("a") and b.available("d")


def test_a_connection_failure_ends_a_model_probe_without_a_verdict():
    clock = Clock()
    b = Breaker(threshold=1, cooldown_s=10, clock=clock)
    b.failure("m")
    clock.now = 10
    b.attempt("m")
    assert not b.available("m")
    b.unreachable("m")  # no verdict on the model: the next request may probe it
    assert b.models["m"].available() and b.models["m"].failures == 1


def test_a_lost_probe_frees_its_slot_after_a_cooldown():
    """A probe whose request never reported back (its client went away) does not hold the pair
    back for ever."""
    clock = Clock()
    b = Breaker(threshold=1, cooldown_s=10, clock=clock)
    b.failure("m")
    clock.now = 10
    b.attempt("m")
    clock.now = 19.9
    assert not b.available("m")
    clock.now = 20
    assert b.available("m")


def test_retry_after_holds_the_pair_back_at_least_that_long():
    clock = Clock()
    b = Breaker(threshold=3, cooldown_s=30, clock=clock)
    b.failure("m", retry_after_s=5)  # one 429, below the threshold: held back all the same
    assert not b.available("m") and b.available("other")
    clock.now = 5
    assert b.available("m")
    b.failure("m", retry_after_s=120)
    b.failure("m", retry_after_s=None)  # opens: the longer of the cooldown and the Retry-After
    clock.now = 5 + 119
    assert not b.available("m")
    clock.now = 5 + 120
    assert b.available("m")
    b.failure("m", retry_after_s=10**9)  # bounded
    clock.now += MAX_RETRY_AFTER_S
    assert b.available("m")


def test_retry_after_header_values():
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("") is None
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds(" 0 ") == 0
    assert retry_after_seconds("99999") == MAX_RETRY_AFTER_S
    assert retry_after_seconds("nan") is None and retry_after_seconds("-3") is None
    assert retry_after_seconds("soon") is None
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert retry_after_seconds("Tue, 14 Nov 2023 22:13:50 GMT", lambda: now) == 30
    assert retry_after_seconds("Tue, 14 Nov 2023 22:00:00 GMT", lambda: now) == 0  # in the past


def test_only_failing_models_are_remembered_and_not_too_many():
    clock = Clock()
    b = Breaker(threshold=3, cooldown_s=30, clock=clock)
    for i in range(MAX_TRACKED_MODELS + 10):
        clock.now = i
        b.failure(f"m{i}")
    assert len(b.models) == MAX_TRACKED_MODELS and "m0" not in b.models  # the longest quiet, forgotten
    b.success(f"m{MAX_TRACKED_MODELS + 9}")
    assert len(b.models) == MAX_TRACKED_MODELS - 1


def test_route_skips_the_failing_pair_not_the_provider():
    clock = Clock()
    cheap, pricey = _provider("cheap", clock), _provider("pricey", clock, fee="0.5")
    for _ in range(3):
        cheap.breaker.failure("m")
    assert [p.name for p, _ in route([cheap, pricey], "m")] == ["pricey"]
    assert [p.name for p, _ in route([cheap, pricey], "other")] == ["cheap", "pricey"]


def test_when_every_offer_cools_down_the_least_recently_failed_is_tried():
    clock = Clock()
    a, b = _provider("a", clock), _provider("b", clock, fee="0.5")
    for _ in range(3):
        clock.now += 1
        b.breaker.failure("m")
    for _ in range(3):
        clock.now += 1
        a.breaker.failure("m")  # a failed last
    assert [p.name for p, _ in route([a, b], "m")] == ["b"]
    # the only upstream, every model failing, its connection too: still tried, never refused
    for _ in range(3):
        a.breaker.unreachable("x")
    assert [(p.name, m) for p, m in route([a], "x")] == [("a", "x")]
    # an alias: the least recently failed of its targets
    clock.now += 1
    for _ in range(3):
        b.breaker.failure("n")
    assert [(p.name, m) for p, m in route([b], "fast", {"fast": ("n", "m")})] == [("b", "m")]


def test_route_offers_nothing_only_when_nobody_serves_the_model():
    clock = Clock()
    anthropic = _provider("claude", clock, kind="anthropic")
    openai = ProviderSpec("o", "http://x", models=frozenset({"gpt-4o-mini"}))
    only = Provider(openai, client=None, breaker=Breaker(3, 30, clock))  # type: ignore[arg-type]
    assert route([only], "no-such-model") == []
    assert route([only], "alias", {"alias": ("nope",)}) == []
    assert route([anthropic], "m", accept=lambda p: p.spec.kind == "openai") == []


@pytest.mark.parametrize("failures", [0, 2])
def test_an_answered_probe_closes_a_half_failed_pair(failures: int):
    clock = Clock()
    b = Breaker(threshold=3, cooldown_s=30, clock=clock)
    for _ in range(failures):
        b.failure("m")
    b.attempt("m")
    b.success("m")
    assert "m" not in b.models and b.last_failure("m") == float("-inf")
