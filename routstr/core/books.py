"""The node's books per mint and unit: what it holds, what it owes, what is its own.

Pure arithmetic over figures the storage edge adds up. Everything a user can still claim is a
liability: key balances, reservations in flight, X-Cashu change not yet paid out. Change and refund
tokens already made but never collected are the users' eCash (their proofs are not in the node's
wallet); they are listed so an operator sees them, and nothing ever sweeps them.
"""

from __future__ import annotations

from dataclasses import dataclass

from routstr.core.money import UNIT_MSAT


@dataclass(frozen=True, slots=True)
class MintBooks:
    mint_url: str
    unit: str
    wallet: int  # in the unit: unspent and reserved proofs the node holds
    balances_msat: int  # spendable balances of keys of this mint and unit
    reserved_msat: int  # reservations of requests in flight
    xcashu_change_msat: int  # of the balances: change of X-Cashu requests waiting to be paid out
    uncollected_tokens: int  # refund/change tokens made but never handed to their owner
    uncollected_amount: int  # their value, in the unit
    pending_swaps: int  # swaps not yet finished (recovery finishes them)
    pending_refunds: int  # in the unit: what those of them that are refunds or payouts owe their users

    @property
    def wallet_msat(self) -> int:
        return self.wallet * UNIT_MSAT[self.unit]

    @property
    def owed_msat(self) -> int:
        return self.balances_msat + self.reserved_msat + self.pending_refunds * UNIT_MSAT[self.unit]

    @property
    def surplus_msat(self) -> int:
        """The node's own money (earnings and sub-unit dust); negative means a shortfall."""
        return self.wallet_msat - self.owed_msat

    def as_dict(self) -> dict[str, object]:
        return {
            "mint": self.mint_url,
            "unit": self.unit,
            "wallet_msat": self.wallet_msat,
            "owed_msat": self.owed_msat,
            "balances_msat": self.balances_msat,
            "reserved_msat": self.reserved_msat,
            "xcashu_change_msat": self.xcashu_change_msat,
            "uncollected_tokens": self.uncollected_tokens,
            "uncollected_amount": self.uncollected_amount,
            "pending_swaps": self.pending_swaps,
            "pending_refunds": self.pending_refunds,
            "surplus_msat": self.surplus_msat,
        }
