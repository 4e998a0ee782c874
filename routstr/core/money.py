"""Msat arithmetic. Balances are integers in msat; eCash units convert exactly."""

from __future__ import annotations

MSAT_PER_SAT = 1000
MSAT_PER_BTC = 100_000_000_000

UNIT_MSAT = {"sat": MSAT_PER_SAT, "msat": 1}


def unit_to_msat(amount: int, unit: str) -> int:
    """An amount of a Cashu unit in msat; units the node cannot price are rejected."""
    try:
        return amount * UNIT_MSAT[unit]
    except KeyError:
        raise ValueError(f"unsupported unit {unit!r}") from None


def msat_to_unit_floor(msat: int, unit: str) -> int:
    """Whole units payable from ``msat`` (the rest stays where it is)."""
    return msat // UNIT_MSAT[unit]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def whole_unit_charge(cost_msat: int, unit_msat: int) -> int:
    """What a request paid in eCash of ``unit_msat`` is charged, so that its change is whole units.

    Rounded up: a coarser unit never makes a request cheaper than its price (rounding down let a
    request priced just under a whole sat go for up to half price). The reservation of such a request
    is rounded up the same way, so the charge always fits in it.
    """
    if cost_msat <= 0:
        return 0
    return ceil_div(cost_msat, unit_msat) * unit_msat
