"""Paying a key's balance back as a Cashu token of the key's mint.

The debit, the choice of the node's proofs and the swap record are one transaction; the token is
made by a swap at the mint (so the user's proofs are fresh and the node keeps the change). The
mint's input fee (NUT-02), if any, is paid out of the refund.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from routstr.cashu.errors import MintError, MintUnavailable
from routstr.cashu.nut00 import Proof
from routstr.cashu.nut02 import fee_for, split_amount
from routstr.cashu.outputs import prepare_outputs
from routstr.core import failpoints
from routstr.core.errors import InternalError, InvalidRequest, NotFound, ServiceUnavailable
from routstr.core.money import UNIT_MSAT
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.inflight import executing, is_executing
from routstr.wallet.mints import MintRegistry
from routstr.wallet.recovery import recover_swap, revert_refund
from routstr.wallet.swaps import complete_swap, output_record


class NothingToRefund(InvalidRequest):
    """The balance is below one unit of the key's eCash, or below the mint's fee for paying it out."""


@dataclass(frozen=True, slots=True)
class Refund:
    token: str
    amount: int  # in the token's unit
    unit: str
    mint_url: str
    debited_msat: int


class Refunder:
    def __init__(self, db: Database, mints: MintRegistry) -> None:
        self.db = db
        self.mints = mints

    async def refund(self, key_id: int) -> Refund:
        async with self.db.read() as conn:
            key = await accounts.key_by_id(conn, key_id)
        if key is None or key.mint_url is None:
            raise NotFound("Unknown key")
        earlier = await self._uncollected(key_id)
        if earlier is not None:
            return earlier
        per_unit = UNIT_MSAT[key.unit]
        units = key.balance_msat // per_unit
        if units <= 0:
            raise NothingToRefund(
                "Nothing to refund: the balance is below one " + key.unit,
                details={"balance_msat": key.balance_msat, "reserved_msat": key.reserved_msat},
            )
        debit = units * per_unit
        try:  # nothing is debited yet: a mint that is down now leaves the balance as it is
            active = await self.mints.active_keyset(key.mint_url, key.unit)
            infos = {k.id: k.input_fee_ppk for k in await self.mints.client(key.mint_url).keysets()}
        except MintUnavailable:
            raise ServiceUnavailable(
                "The mint is unavailable; your balance is unchanged, try again shortly",
                code="mint_unavailable",
            ) from None
        swap_id = uuid.uuid4().hex
        async with self.db.write() as conn:
            if not await accounts.debit_for_refund(conn, key_id, debit, ref=swap_id):
                raise InvalidRequest("The balance changed while refunding; try again")
            chosen = await wallet_store.take_proofs(conn, key.mint_url, key.unit, units, swap_id)
            if chosen is None:
                raise InternalError(
                    "The node's wallet cannot cover this refund; the operator has been alerted"
                )
            inputs = [Proof(amount=c["amount"], id=c["id"], secret=c["secret"], C=c["C"]) for c in chosen]
            fee = fee_for(inputs, infos)
            total = sum(p.amount for p in inputs)
            # the refund pays its own swap fee: the node's change is exactly what it held beyond the debit
            user_amount = units - fee
            change = total - units
            if user_amount <= 0:
                raise NothingToRefund(f"The balance does not cover the mint's fee of {fee} {key.unit}")
            user_out = prepare_outputs(split_amount(user_amount), active.id)
            node_out = prepare_outputs(split_amount(change), active.id) if change else []
            await wallet_store.insert_swap(
                conn,
                swap_id=swap_id,
                kind="refund",
                mint_url=key.mint_url,
                unit=key.unit,
                key_id=key_id,
                token_hash=None,
                inputs=[p.to_input_dict() for p in inputs],
                outputs=[output_record(o, "user") for o in user_out]
                + [output_record(o, "node") for o in node_out],
                user_amount=user_amount,
            )
        with executing(swap_id):
            client = self.mints.client(key.mint_url)
            try:
                sigs = await client.swap(inputs, [o.to_blinded_message() for o in [*user_out, *node_out]])
            except MintError as e:
                await revert_refund(self.db, swap_id, inputs_spent=e.is_already_spent, error=str(e))
                raise ServiceUnavailable(
                    f"The mint refused the refund swap ({e.detail}); your balance is unchanged"
                ) from None
            except MintUnavailable as e:
                if not e.maybe_processed:  # the mint never saw it: the balance goes straight back
                    await revert_refund(self.db, swap_id, inputs_spent=False, error=str(e))
                    raise ServiceUnavailable(
                        "The mint is unavailable; your balance is unchanged, try again shortly",
                        code="mint_unavailable",
                    ) from None
                async with self.db.read() as conn:
                    swap = await wallet_store.swap_by_id(conn, swap_id)
                if swap is not None:
                    await recover_swap(self.db, self.mints, swap)
                raise ServiceUnavailable(
                    "The mint did not answer; if the refund went through it is kept for you, "
                    "call refund again"
                ) from None
            failpoints.hit("refund.after_swap")  # the user's proofs exist at the mint; not yet stored here
            outcome = await complete_swap(self.db, self.mints, swap_id, sigs, handing_out=True)
            assert outcome.user_token is not None
        return Refund(outcome.user_token, user_amount, key.unit, key.mint_url, debit)

    async def change(self, key_id: int) -> Refund | None:
        """Pay out whatever the key holds (an X-Cashu request's change); None if it is dust."""
        try:
            return await self.refund(key_id)
        except NothingToRefund:
            return None

    async def _uncollected(self, key_id: int) -> Refund | None:
        """A refund that went through but never reached the user (crash, lost answer): hand it out now."""
        async with self.db.read() as conn:
            pending = await wallet_store.refund_swaps(conn, key_id, wallet_store.PENDING)
        for swap in pending:
            if not is_executing(swap.id):  # another call of this process may be sending it now
                await recover_swap(self.db, self.mints, swap)
        async with self.db.write() as conn:
            for swap in await wallet_store.refund_swaps(conn, key_id, wallet_store.DONE):
                if swap.result_token and await wallet_store.mark_collected(conn, swap.id):
                    debited = await accounts.refund_amount(conn, key_id, swap.id) or 0
                    return Refund(swap.result_token, swap.user_amount, swap.unit, swap.mint_url, debited)
        return None
