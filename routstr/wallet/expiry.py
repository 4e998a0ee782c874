"""Keys that expire: at ``Key-Expiry-Time`` what is left goes to the key's ``Refund-LNURL``.

Run by a background job. A payout that cannot be made now (the address's server or the mint is
down) is tried again next round; one that can never be made (no address, less than the fees, or an
address the outbound policy refuses: a private or plain-http server, see ``wallet/lnurl.py``) ends
the expiry and leaves the balance on the key, claimable with a refund like any other.
"""

from __future__ import annotations

import logging

from routstr.core.errors import ApiError, InvalidRequest
from routstr.storage import accounts
from routstr.storage.db import Database
from routstr.wallet.lightning_out import Payouts
from routstr.webhooks.events import key_expired

log = logging.getLogger(__name__)


async def pay_out_expired(db: Database, payouts: Payouts) -> dict[str, int]:
    async with db.read() as conn:
        due = await accounts.expired_keys(conn, accounts.now_ms())
    counts: dict[str, int] = {}
    for key_id, address in due:
        outcome = "kept"
        if address:
            try:
                outcome = (await payouts.pay(key_id, address)).state
            except InvalidRequest as e:
                log.warning("expired key %d: cannot pay out to its refund address: %s", key_id, e.message)
            except ApiError as e:
                log.warning("expired key %d: payout failed for now, will retry: %s", key_id, e.message)
                counts["retry"] = counts.get("retry", 0) + 1
                continue
        async with db.write() as conn:
            await key_expired(conn, key_id, outcome)  # the key.expired webhook, with the same commit
            await accounts.clear_expiry(conn, key_id)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
