"""Paying a key's balance out over Lightning: a melt (NUT-05) of the node's proofs at the key's mint.

The steps, each committed before the next:
1. resolve the destination to a bolt11 (an invoice as it is; for a Lightning address or LNURL, one
   made for the balance less the fees, re-quoted until it fits) and get the mint's melt quote;
2. in one transaction: debit the key by amount + fee reserve + input fee, reserve the proofs, and
   record the melt with its blank outputs (NUT-08) for the unused fee reserve;
3. melt; on PAID store the change and give the key back what the Lightning fee did not use.
A refused melt gives the debit back. A lost answer is never guessed: the quote's state decides,
later if need be (``recover_melt``, run with the swap recovery).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import aiohttp

from routstr.cashu.errors import CashuError, MintError, MintUnavailable
from routstr.cashu.nut00 import Proof
from routstr.cashu.nut02 import fee_for
from routstr.cashu.nut05 import MeltQuote, MeltQuoteState
from routstr.cashu.nut08 import prepare_blank_outputs, unblind_change, unblind_restored_change
from routstr.cashu.outputs import PreparedOutput
from routstr.core import failpoints
from routstr.core.errors import InvalidRequest, NotFound, ServiceUnavailable
from routstr.core.money import UNIT_MSAT, ceil_div
from routstr.core.swap_kinds import Owner, SwapKind, SwapState
from routstr.net.outbound import OutboundPolicy
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.inflight import MELT_GRACE_S
from routstr.wallet.lnurl import LNURL_TIMEOUT_S, invoice_for, is_bolt11, lnurl_endpoint, pay_request
from routstr.wallet.mints import MintRegistry
from routstr.wallet.swaps import Operation, output_record, prepared_from_record, revert_refund

log = logging.getLogger(__name__)

QUOTE_ATTEMPTS = 3
INPUTS_ALLOWED = 8  # room left for the mint's input fee when paying a whole balance to an address


@dataclass(frozen=True, slots=True)
class Payout:
    state: str  # paid | pending
    amount: int  # sats the destination receives
    fee: int  # sats of Lightning fee and mint input fee actually paid
    preimage: str | None
    debited_msat: int  # what left the key in the end
    id: str = ""  # the payout's swap: how the operator finds it (and what clients call refund_id)


class _Short(Exception):
    pass


class Payouts:
    def __init__(
        self,
        db: Database,
        mints: MintRegistry,
        session: aiohttp.ClientSession,
        allow_http: bool = False,
        allow_private: tuple[str, ...] = (),
    ) -> None:
        self.db = db
        self.mints = mints
        self.session = session  # the node's shared session (webhooks); LNURLs get a guarded one
        # where Lightning addresses and their callbacks may be fetched: https, public addresses, unless
        # LNURL_ALLOW_HTTP / LNURL_ALLOW_PRIVATE say otherwise (local tests, an operator's own server)
        self.policy = OutboundPolicy(allow_http, allow_private)

    async def pay(self, key_id: int, destination: str) -> Payout:
        async with self.db.read() as conn:
            key = await accounts.key_by_id(conn, key_id)
        if key is None or key.mint_url is None:
            raise NotFound("Unknown key")
        if key.unit != "sat":
            raise InvalidRequest("Lightning payouts are for keys holding sat eCash")
        client = self.mints.client(key.mint_url)
        units = key.balance_msat // UNIT_MSAT[key.unit]
        try:
            fee_ppk = await client.fee_ppk_by_keyset()
        except MintUnavailable as e:  # nothing is debited yet
            log.info("payout for key %d: the mint is unavailable: %s", key_id, e)
            raise ServiceUnavailable(
                "The mint is unavailable; your balance is unchanged, try again shortly",
                code="mint_unavailable",
            ) from None
        quote = await self._quote(key.mint_url, destination, units, max(fee_ppk.values(), default=0))
        swap_id = uuid.uuid4().hex
        try:
            inputs, debit_units, blank = await self._record(
                key_id, key.mint_url, quote, fee_ppk, units, swap_id
            )
        except _Short:
            raise InvalidRequest(
                f"The balance ({units} sat) does not cover {quote.amount} sat plus the Lightning fee "
                f"reserve of {quote.fee_reserve} sat and the mint's input fee",
                details={
                    "balance_msat": key.balance_msat,
                    "amount": quote.amount,
                    "fee_reserve": quote.fee_reserve,
                },
            ) from None
        with self.mints.in_flight.executing(swap_id):
            try:
                paid = await client.melt(quote.quote, inputs, [b.to_blinded_message() for b in blank])
            except MintError as e:  # refused: nothing was paid
                await revert_refund(self.db, swap_id, inputs_spent=e.is_already_spent, error=str(e))
                log.info("payout %s: the mint refused the melt: %s", swap_id, e.detail)
                raise ServiceUnavailable(
                    "The mint could not pay the invoice; your balance is unchanged"
                ) from None
            except MintUnavailable:
                return Payout("pending", quote.amount, 0, None, debit_units * 1000, swap_id)
            if paid.state != MeltQuoteState.PAID:
                return Payout("pending", quote.amount, 0, None, debit_units * 1000, swap_id)
            failpoints.hit("payout.after_melt")  # paid; the change is not stored yet
            return await complete_melt(self.db, self.mints, swap_id, paid)

    async def _quote(self, mint: str, destination: str, units: int, fee_ppk: int) -> MeltQuote:
        client = self.mints.client(mint)
        try:
            if is_bolt11(destination):
                return await client.melt_quote(destination.strip())
            url = lnurl_endpoint(destination, self.policy.allow_http)
            async with self.policy.session(LNURL_TIMEOUT_S) as guarded:
                req = await pay_request(guarded, self.policy, url)
                spendable = units - ceil_div(fee_ppk * INPUTS_ALLOWED, 1000)  # room for the input fee
                target = spendable
                for _ in range(QUOTE_ATTEMPTS):
                    if target <= 0:
                        break
                    invoice = await invoice_for(guarded, self.policy, req, target * 1000)
                    quote = await client.melt_quote(invoice)
                    over = quote.amount + quote.fee_reserve - spendable
                    if over <= 0:
                        return quote
                    target -= over
        except CashuError as e:  # the mint's words (and its URL) are for the operator's log
            log.info("payout: the mint could not quote the payment: %s", e)
            raise ServiceUnavailable("The mint could not quote the payment; nothing was paid") from None
        raise InvalidRequest(f"The balance ({units} sat) is too small to pay out over Lightning after fees")

    async def _record(
        self, key_id: int, mint: str, quote: MeltQuote, fee_ppk: dict[str, int], units: int, swap_id: str
    ) -> tuple[list[Proof], int, list[PreparedOutput]]:
        """Debit, reserve the proofs and write the melt down, in one transaction."""
        need = quote.amount + quote.fee_reserve
        active = await self.mints.active_keyset(mint, "sat")
        async with self.db.write() as conn:
            input_fee = 0
            for _ in range(3):  # the input fee depends on the proofs taken, which depend on it
                taken = await wallet_store.take_proofs(conn, mint, "sat", need + input_fee, swap_id)
                if taken is None:
                    raise ServiceUnavailable(
                        "The node's wallet cannot cover this payout; the operator has been alerted"
                    )
                inputs = [Proof(amount=t["amount"], id=t["id"], secret=t["secret"], C=t["C"]) for t in taken]
                fee = fee_for(inputs, fee_ppk)
                if fee <= input_fee:
                    break
                await wallet_store.settle_inputs(conn, swap_id, spent=False)
                input_fee = fee
            debit_units = need + input_fee
            if debit_units > units or not await accounts.debit_for_refund(
                conn, key_id, debit_units * 1000, ref=swap_id
            ):
                raise _Short
            max_change = sum(p.amount for p in inputs) - quote.amount - input_fee
            blank = prepare_blank_outputs(max_change, active.id)
            await wallet_store.insert_swap(
                conn,
                swap_id=swap_id,
                kind=SwapKind.MELT,
                mint_url=mint,
                unit="sat",
                key_id=key_id,
                token_hash=None,
                inputs=[p.to_input_dict() for p in inputs],
                outputs=[output_record(o, Owner.CHANGE) for o in blank],
                user_amount=quote.amount,
                detail={"quote": quote.quote, "fee_reserve": quote.fee_reserve, "debit": debit_units},
            )
        return inputs, debit_units, blank


async def complete_melt(db: Database, mints: MintRegistry, swap_id: str, paid: MeltQuote) -> Payout:
    """A paid melt: keep the change, give the key back the unused fee reserve, once."""
    async with db.read() as conn:
        swap = await wallet_store.swap_by_id(conn, swap_id)
    assert swap is not None and swap.key_id is not None
    d = swap.detail or {}
    blank = [prepared_from_record(r) for r in swap.outputs]
    change: list[Proof] = []
    if blank:
        keyset = await mints.keyset(swap.mint_url, blank[0].keyset_id)
        if paid.change:
            change = unblind_change(blank, paid.change, keyset)
        elif paid.fee_reserve:  # a quote read later may not repeat the change: the mint's records do
            restored = await mints.client(swap.mint_url).restore([b.to_blinded_message() for b in blank])
            change = unblind_restored_change(blank, restored, keyset)
    inputs_total = sum(int(p["amount"]) for p in swap.inputs)
    debit = int(d["debit"])
    back = max(sum(p.amount for p in change) - (inputs_total - debit), 0)  # unused fee reserve
    fee = debit - swap.user_amount - back
    async with db.write() as conn:
        if await wallet_store.finish_swap(conn, swap_id, SwapState.DONE):
            await wallet_store.settle_inputs(conn, swap_id, spent=True)
            await wallet_store.add_proofs(
                conn, swap.mint_url, swap.unit, swap_id, [{**p.to_input_dict(), "Y": p.Y} for p in change]
            )
            if back:
                await accounts.credit(conn, swap.key_id, back * 1000, ref=swap_id)
    return Payout("paid", swap.user_amount, fee, paid.payment_preimage, (debit - back) * 1000, swap_id)


async def recover_melt(db: Database, mints: MintRegistry, swap: wallet_store.SwapRow) -> SwapState:
    """Settle a melt whose answer was lost, from the quote's state at the mint."""
    client = mints.client(swap.mint_url)
    try:
        quote = await client.melt_quote_state(str((swap.detail or {})["quote"]))
        if quote.state == MeltQuoteState.PAID:
            await complete_melt(db, mints, swap.id, quote)
            return SwapState.DONE
        if quote.state == MeltQuoteState.PENDING:
            return SwapState.PENDING
        states = await client.check_state([Proof.from_dict(p).Y for p in swap.inputs])
    except CashuError as e:
        log.warning("melt %s could not be settled yet: %s", swap.id, e)
        return SwapState.PENDING
    if set(states.values()) == {"UNSPENT"}:
        await revert_refund(db, swap.id, inputs_spent=False, error="melt did not happen")
        return SwapState.FAILED
    return SwapState.PENDING


# a melt is paid for by the key's debit, as a refund is: undone, the debit is given back
OPERATION = Operation(SwapKind.MELT, recover_melt, revert_refund, MELT_GRACE_S)
