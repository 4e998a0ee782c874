"""The pure core: prices to the msat, ledger settlement rules."""

from __future__ import annotations

from decimal import Decimal

import pytest

from routstr.core.ledger import Settlement, settle
from routstr.core.pricing import ModelPrice, PriceBook, PriceSpec, parse_spec


def test_cost_rounds_up_once_at_the_end():
    p = ModelPrice(prompt_msat_per_mtok=1_500_000, completion_msat_per_mtok=2_000_001)
    # 3 * 1.5 + 1 * 2.000001 = 6.500001 msat -> 7
    assert p.cost_msat(3, 1) == 7
    assert p.cost_msat(0, 0) == 0
    assert ModelPrice(1, 1, request_msat=5).cost_msat(1, 0) == 6


def test_usd_price_never_undercharges():
    spec = PriceSpec(prompt=Decimal("0.15"), completion=Decimal("0.6"), currency="usd")
    p = spec.resolve(Decimal("97000"))
    # 0.15 USD per Mtok at 97,000 USD/BTC = 154,639.17... msat per Mtok -> rounded up
    assert p.prompt_msat_per_mtok == 154_640
    assert p.completion_msat_per_mtok == 618_557
    with pytest.raises(ValueError):
        spec.resolve(None)


def test_affordable_output_is_the_largest_that_fits():
    p = ModelPrice(prompt_msat_per_mtok=2_000_000, completion_msat_per_mtok=7_000_000)
    n = p.affordable_output_tokens(1000, 100)
    assert p.cost_msat(100, n) <= 1000 < p.cost_msat(100, n + 1)
    assert p.affordable_output_tokens(100, 100) == 0


def test_price_file_parsing_errors_are_explicit():
    book = PriceBook.from_mapping(
        {
            "default": {"prompt_sats_per_mtok": 1},
            "models": {"m": {"prompt_usd_per_mtok": 1, "max_output_tokens": 9}},
        }
    )
    assert book.spec_for("m").currency == "usd" and book.spec_for("m").max_output_tokens == 9
    assert book.spec_for("other") == book.default
    with pytest.raises(ValueError, match="either in sats"):
        parse_spec({"prompt_sats_per_mtok": 1, "prompt_usd_per_mtok": 1}, "x")
    with pytest.raises(ValueError, match="unknown field"):
        parse_spec({"prompt_sats_per_mtok": 1, "bogus": 2}, "x")
    with pytest.raises(ValueError, match="non-negative"):
        parse_spec({"prompt_sats_per_mtok": -1}, "x")


@pytest.mark.parametrize(
    ("reserved", "cost", "available", "expected"),
    [
        (100, 40, 0, Settlement(charge=40, release=60, extra=0, unpaid=0)),
        (100, 100, 5, Settlement(charge=100, release=0, extra=0, unpaid=0)),
        (100, 130, 50, Settlement(charge=130, release=0, extra=30, unpaid=0)),
        (100, 130, 10, Settlement(charge=110, release=0, extra=10, unpaid=20)),
        (0, 0, 0, Settlement(charge=0, release=0, extra=0, unpaid=0)),
    ],
)
def test_settlement(reserved: int, cost: int, available: int, expected: Settlement):
    s = settle(reserved, cost, available)
    assert s == expected
    # money is conserved: what was held plus what was taken is charged or released
    assert s.charge + s.release == reserved + s.extra
    assert s.extra <= available


def test_settlement_rejects_negative_amounts():
    with pytest.raises(ValueError):
        settle(-1, 0, 0)
