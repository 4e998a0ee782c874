"""The circuit breaker's states, and a provider's fee on the listed price."""

from __future__ import annotations

from decimal import Decimal

from routstr.core.pricing import ModelPrice
from routstr.upstream.breaker import Breaker
from routstr.upstream.providers import Provider, route
from routstr.upstream.spec import ProviderSpec


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_cools_down_and_probes_once():
    clock = Clock()
    b = Breaker(threshold=2, cooldown_s=10, clock=clock)
    b.unreachable("m")
    assert b.available() and not b.is_open
    b.unreachable("m")
    assert b.is_open and not b.available() and not b.available("other")
    clock.now = 10
    assert b.available()
    b.attempt("m")  # the probe is on its way: nobody else goes there meanwhile
    assert not b.available()
    b.unreachable("m")  # the probe failed: another cooldown
    assert not b.available()
    clock.now = 20
    b.attempt("m")
    b.success("m")
    assert not b.is_open and b.available()


def _provider(name: str, fee: str, models: list[str] | None = None) -> Provider:
    spec = ProviderSpec(name, "http://x", fee=Decimal(fee), models=frozenset(models) if models else None)
    return Provider(spec, client=None)  # type: ignore[arg-type]


def test_fee_is_a_markup_rounded_up():
    base = ModelPrice(prompt_msat_per_mtok=1000, completion_msat_per_mtok=3001, request_msat=10)
    p = _provider("a", "0.1").price(base)
    assert (p.prompt_msat_per_mtok, p.completion_msat_per_mtok, p.request_msat) == (1100, 3302, 11)
    assert _provider("b", "0").price(base) is base


def test_route_is_cheapest_first_and_skips_providers_on_cooldown():
    a, b, c = _provider("a", "0.2"), _provider("b", "0.05"), _provider("c", "0", models=["other"])
    assert [(p.name, m) for p, m in route([a, b, c], "m")] == [("b", "m"), ("a", "m")]
    for _ in range(b.breaker.threshold):
        b.breaker.unreachable("m")  # b's connection fails: on cooldown
    assert [p.name for p, _ in route([a, b, c], "m")] == ["a"]
    # an alias offers each target's providers, cheapest first, the alias order breaking ties
    a.listed = frozenset({"m"})  # what its /models said
    assert [(p.name, m) for p, m in route([a, c], "fast", {"fast": ("other", "m")})] == [
        ("c", "other"),
        ("a", "m"),
    ]
