"""Paying the node's earnings out: as a Cashu token, or over Lightning. Never users' money: what may
leave is checked against the books in the transaction that takes the proofs (``wallet/withdraw.py``).

The admin API, the dashboard and ``routstr withdraw`` call these; the answers are what they show.
"""

from __future__ import annotations

from typing import Any

from routstr.node import Node
from routstr.storage.db import Database
from routstr.wallet.lightning_out import Payouts
from routstr.wallet.mints import MintRegistry
from routstr.wallet.withdraw import earnings, withdraw
from routstr.wallet.withdraw_lightning import withdraw_lightning

UNITS = ("sat", "msat")


async def available(node: Node) -> list[dict[str, Any]]:
    """The earnings that may be withdrawn, per mint and unit."""
    return [
        {"mint": m, "unit": u, "amount": await earnings(node.db, m, u)}
        for m in node.mints.urls
        for u in UNITS
    ]


async def as_token(
    db: Database, mints: MintRegistry, mint: str, unit: str, amount: int | None
) -> dict[str, Any]:
    """Earnings at ``mint`` in ``unit`` (all of them if ``amount`` is None) as a Cashu token, shown
    this once."""
    w = await withdraw(db, mints, mint, unit, amount)
    return {"token": w.token, "amount": w.amount, "fee": w.fee, "unit": unit}


async def over_lightning(
    db: Database, payouts: Payouts, mint: str, to: str, amount: int | None
) -> dict[str, Any]:
    """Earnings at ``mint`` paid to ``to`` (a bolt11, a Lightning address or an LNURL); ``state`` is
    ``paid``, or pending while the payment is in flight."""
    p = await withdraw_lightning(db, payouts, mint, to, amount)
    return {"state": p.state, "amount_sats": p.amount, "fee_sats": p.fee, "preimage": p.preimage}
