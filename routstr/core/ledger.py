"""Ledger rules: how a reservation becomes a charge and a release.

Every movement of a key's money is one append-only ledger row of one of these kinds. With
``available`` the spendable balance and ``reserved`` the money held for requests in flight:

* credit  : available += amount   (eCash redeemed)
* reserve : available -= amount, reserved += amount   (before forwarding)
* release : reserved -= amount, available += amount   (the part not used)
* charge  : reserved -= amount   (what the request cost; it leaves the key)
* refund  : available -= amount   (paid back to the user as eCash)

So at every commit: available = credit - reserve + release - refund, and
reserved = reserve - release - charge. Tests check these sums against the stored balances.
"""

from __future__ import annotations

from dataclasses import dataclass

CREDIT, RESERVE, RELEASE, CHARGE, REFUND = "credit", "reserve", "release", "charge", "refund"


@dataclass(frozen=True, slots=True)
class Settlement:
    """How to close a reservation of ``reserved`` msat for a request that cost ``cost`` msat."""

    charge: int  # leaves the key
    release: int  # back to available
    extra: int  # cost beyond the reservation, to take from available (if it has it)
    unpaid: int  # cost beyond what the key holds: the node's loss, recorded, never a negative balance


def settle(reserved: int, cost: int, available: int) -> Settlement:
    """Charge ``cost`` against a reservation; an overrun takes only what the balance holds."""
    if reserved < 0 or cost < 0 or available < 0:
        raise ValueError("amounts are never negative")
    if cost <= reserved:
        return Settlement(charge=cost, release=reserved - cost, extra=0, unpaid=0)
    over = cost - reserved
    extra = min(over, available)
    return Settlement(charge=reserved + extra, release=0, extra=extra, unpaid=over - extra)


def balances_from(sums: dict[str, int]) -> tuple[int, int]:
    """(available, reserved) that a key's ledger sums say it must hold."""
    available = sums.get(CREDIT, 0) - sums.get(RESERVE, 0) + sums.get(RELEASE, 0) - sums.get(REFUND, 0)
    reserved = sums.get(RESERVE, 0) - sums.get(RELEASE, 0) - sums.get(CHARGE, 0)
    return available, reserved
