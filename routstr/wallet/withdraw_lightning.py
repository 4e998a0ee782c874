"""The operator's earnings paid over Lightning (``routstr withdraw --to``, ``RECEIVE_LN_ADDRESS``).

Earnings are first moved, checked against the books in the same transaction, onto the operator's
own account (one per mint and unit), then paid out by the same melt machinery as users' payouts,
crash recovery included. What a failed payment leaves on that account is retried next time.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from routstr.core.money import UNIT_MSAT
from routstr.storage import accounts
from routstr.storage.books import earnings_units
from routstr.storage.db import Database
from routstr.wallet.lightning_out import Payout, Payouts
from routstr.wallet.withdraw import WouldTouchUserMoney

log = logging.getLogger(__name__)

OPERATOR_KIND = "operator"


def operator_key_hash(mint_url: str, unit: str) -> str:
    return hashlib.sha256(f"routstr-operator|{mint_url}|{unit}".encode()).hexdigest()


async def withdraw_lightning(
    db: Database, payouts: Payouts, mint_url: str, destination: str, amount: int | None = None
) -> Payout:
    """Pay ``amount`` sat of earnings (all if None) to a bolt11, Lightning address or LNURL."""
    unit = "sat"
    async with db.write() as conn:
        khash = operator_key_hash(mint_url, unit)
        key = await accounts.key_by_hash(conn, khash)
        key_id = key.id if key else await accounts.create_key(conn, khash, OPERATOR_KIND, mint_url, unit)
        parked = key.balance_msat // UNIT_MSAT[unit] if key else 0
        surplus = await earnings_units(conn, mint_url, unit)
        amount = surplus + parked if amount is None else amount
        if amount <= 0 or amount > surplus + parked:
            raise WouldTouchUserMoney(
                f"The node's earnings at {mint_url} are {surplus + parked} sat; paying {amount} would take "
                "money it owes its users",
                details={"earnings": surplus + parked, "requested": amount},
            )
        if amount > parked:
            await accounts.credit(
                conn, key_id, (amount - parked) * UNIT_MSAT[unit], ref="earnings:" + uuid.uuid4().hex
            )
    return await payouts.pay(key_id, destination)


async def auto_payout(
    db: Database, payouts: Payouts, mint_url: str, address: str, threshold_sats: int
) -> Payout | None:
    """Pay everything earned to ``address`` once it reaches ``threshold_sats``."""
    async with db.read() as conn:
        key = await accounts.key_by_hash(conn, operator_key_hash(mint_url, "sat"))
        parked = key.balance_msat // 1000 if key else 0
        surplus = await earnings_units(conn, mint_url, "sat")
    if surplus + parked < threshold_sats:
        return None
    return await withdraw_lightning(db, payouts, mint_url, address)
