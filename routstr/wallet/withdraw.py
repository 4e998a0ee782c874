"""The operator takes their earnings: eCash beyond what the node owes, as a Cashu token.

What may leave is checked in the same transaction that reserves the proofs, against the books (the
wallet less balances, reservations and refunds in flight), so concurrent requests cannot make a
withdrawal take users' money. The swap is recorded before it is sent, like every other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from routstr.cashu.errors import MintError, MintUnavailable
from routstr.cashu.nut00 import Proof
from routstr.cashu.nut02 import fee_for, split_amount
from routstr.cashu.outputs import prepare_outputs
from routstr.core import failpoints
from routstr.core.errors import InvalidRequest, ServiceUnavailable
from routstr.core.swap_kinds import Owner, SwapKind, SwapState
from routstr.storage import wallet_store
from routstr.storage.books import earnings_units
from routstr.storage.db import Database
from routstr.wallet.mints import MintRegistry
from routstr.wallet.swaps import Operation, complete_swap, output_record, recover_from_mint


@dataclass(frozen=True, slots=True)
class Withdrawal:
    token: str
    amount: int  # in the unit, after the mint's input fee
    fee: int


class WouldTouchUserMoney(InvalidRequest):
    code = "withdraw_exceeds_earnings"


async def earnings(db: Database, mint_url: str, unit: str) -> int:
    """What the node may withdraw at ``mint_url`` in ``unit`` (whole units of its surplus)."""
    async with db.read() as conn:
        return await earnings_units(conn, mint_url, unit)


async def withdraw(
    db: Database, mints: MintRegistry, mint_url: str, unit: str, amount: int | None
) -> Withdrawal:
    """Withdraw ``amount`` (all earnings if None) as a token; refused if it would touch user money.

    A withdrawal that went through but was never handed out (the process died) is handed out first.
    """
    earlier = await _uncollected(db, mints)
    if earlier is not None:
        return earlier
    active = await mints.active_keyset(mint_url, unit)
    fee_ppk = await mints.client(mint_url).fee_ppk_by_keyset()
    swap_id = uuid.uuid4().hex
    async with db.write() as conn:
        surplus = await earnings_units(conn, mint_url, unit)
        amount = surplus if amount is None else amount
        if amount <= 0 or amount > surplus:
            raise WouldTouchUserMoney(
                f"The node's earnings at {mint_url} are {surplus} {unit}; withdrawing {amount} would take "
                "money it owes its users",
                details={"earnings": surplus, "requested": amount},
            )
        taken = await wallet_store.take_proofs(conn, mint_url, unit, amount, swap_id)
        if taken is None:
            raise ServiceUnavailable("The wallet cannot cover this withdrawal")
        inputs = [Proof(amount=t["amount"], id=t["id"], secret=t["secret"], C=t["C"]) for t in taken]
        fee = fee_for(inputs, fee_ppk)
        if amount - fee <= 0:
            raise InvalidRequest(f"{amount} {unit} does not cover the mint's fee of {fee}")
        out = prepare_outputs(split_amount(amount - fee), active.id)
        change = sum(p.amount for p in inputs) - amount
        keep = prepare_outputs(split_amount(change), active.id) if change else []
        await wallet_store.insert_swap(
            conn,
            swap_id=swap_id,
            kind=SwapKind.WITHDRAW,
            mint_url=mint_url,
            unit=unit,
            key_id=None,
            token_hash=None,
            inputs=[p.to_input_dict() for p in inputs],
            outputs=[output_record(o, Owner.USER) for o in out]
            + [output_record(o, Owner.NODE) for o in keep],
            user_amount=amount - fee,
        )
    with mints.in_flight.executing(swap_id):
        try:
            sigs = await mints.client(mint_url).swap(inputs, [o.to_blinded_message() for o in [*out, *keep]])
        except MintError as e:
            await undo_withdraw(db, swap_id, inputs_spent=e.is_already_spent, error=str(e))
            raise ServiceUnavailable(f"The mint refused the withdrawal: {e.detail}") from None
        except MintUnavailable:
            raise ServiceUnavailable(
                "The mint did not answer; the recovery job will finish the withdrawal"
            ) from None
        failpoints.hit("withdraw.after_swap")
        outcome = await complete_swap(db, mints, swap_id, sigs, handing_out=True)
        assert outcome.user_token is not None
        return Withdrawal(outcome.user_token, amount - fee, fee)


async def _uncollected(db: Database, mints: MintRegistry) -> Withdrawal | None:
    async with db.read() as conn:
        mine = [s for s in await wallet_store.pending_swaps(conn) if s.kind == SwapKind.WITHDRAW]
    for swap in mine:
        if swap.id not in mints.in_flight:
            await recover_withdrawal(db, mints, swap)
    async with db.write() as conn:
        for swap in await wallet_store.uncollected_swaps(conn, SwapKind.WITHDRAW):
            if swap.result_token and await wallet_store.mark_collected(conn, swap.id):
                return Withdrawal(swap.result_token, swap.user_amount, 0)
    return None


async def undo_withdraw(db: Database, swap_id: str, *, inputs_spent: bool, error: str) -> None:
    """A withdrawal that did not happen: no key to give anything back to, the proofs are the node's
    again (unless the mint says they are spent)."""
    async with db.write() as conn:
        if await wallet_store.finish_swap(conn, swap_id, SwapState.FAILED, error=error):
            await wallet_store.settle_inputs(conn, swap_id, spent=inputs_spent)


async def recover_withdrawal(db: Database, mints: MintRegistry, swap: wallet_store.SwapRow) -> SwapState:
    return await recover_from_mint(db, mints, swap, undo_withdraw)


OPERATION = Operation(SwapKind.WITHDRAW, recover_withdrawal, undo_withdraw)
