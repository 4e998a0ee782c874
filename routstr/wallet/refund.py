"""Paying a key's balance back as a Cashu token of the key's mint.

The debit, the choice of the node's proofs and the swap record are one transaction; the token is
made by a swap at the mint (so the user's proofs are fresh and the node keeps the change). The
mint's input fee (NUT-02), if any, is paid out of the refund.

An answer can be lost: the same refund asked again returns the same token (never debited again)
until the mint says it was spent (NUT-07); only then is a new refund made of what the key holds.
Refunds of one key take turns in this process, so two concurrent calls get one token and one debit
(across processes the debit's condition keeps it to one: the other call is told to ask again).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from routstr.cashu.errors import CashuError, MintError, MintUnavailable, TokenError
from routstr.cashu.nut00 import Proof
from routstr.cashu.nut02 import fee_for, split_amount
from routstr.cashu.outputs import prepare_outputs
from routstr.cashu.tokens import decode_token
from routstr.core import failpoints
from routstr.core.errors import InternalError, InvalidRequest, NotFound, ServiceUnavailable
from routstr.core.ids import PROCESS, process_is_dead
from routstr.core.money import UNIT_MSAT
from routstr.core.swap_kinds import Owner, SwapKind, SwapState
from routstr.storage import accounts, refund_store, wallet_store
from routstr.storage.db import Database
from routstr.wallet.inflight import IN_FLIGHT_GRACE_S
from routstr.wallet.mints import MintRegistry
from routstr.wallet.swaps import Operation, complete_swap, output_record, recover_from_mint, revert_refund


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
    """Pays keys' balances out as tokens. ``reuse_open``: a key's last token is handed out again while
    the mint says it is unspent (a lost answer loses nothing); off for X-Cashu change, which comes in
    parts that are each paid as made (``wallet/change_parts.py`` hands unclaimed parts out again)."""

    def __init__(self, db: Database, mints: MintRegistry, *, reuse_open: bool = True) -> None:
        self.db = db
        self.mints = mints
        self.reuse_open = reuse_open
        self._turns: dict[int, tuple[asyncio.Lock, int]] = {}  # key id -> (its lock, callers holding it)

    async def refund(self, key_id: int) -> Refund:
        """The key's open refund token if it has one (not yet spent at the mint), else a new one."""
        async with self._turn(key_id):
            return await self._refund(key_id)

    @asynccontextmanager
    async def _turn(self, key_id: int) -> AsyncIterator[None]:
        lock, users = self._turns.get(key_id) or (asyncio.Lock(), 0)
        self._turns[key_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[key_id]
            if users == 1:
                del self._turns[key_id]
            else:
                self._turns[key_id] = (lock, users - 1)

    async def _refund(self, key_id: int) -> Refund:
        async with self.db.read() as conn:
            key = await accounts.key_by_id(conn, key_id)
        if key is None or key.mint_url is None:
            raise NotFound("Unknown key")
        earlier = await self._open(key_id, key.mint_url) if self.reuse_open else None
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
            fee_ppk = await self.mints.client(key.mint_url).fee_ppk_by_keyset()
        except MintUnavailable:
            raise ServiceUnavailable(
                "The mint is unavailable; your balance is unchanged, try again shortly",
                code="mint_unavailable",
            ) from None
        swap_id = uuid.uuid4().hex
        async with self.db.write() as conn:
            if not await accounts.debit_for_refund(conn, key_id, debit, ref=swap_id):
                # another process refunded (or spent) it meanwhile: asking again returns that refund
                raise InvalidRequest("The balance changed while refunding; ask again", code="balance_changed")
            chosen = await wallet_store.take_proofs(conn, key.mint_url, key.unit, units, swap_id)
            if chosen is None:
                raise InternalError(
                    "The node's wallet cannot cover this refund; the operator has been alerted"
                )
            inputs = [Proof(amount=c["amount"], id=c["id"], secret=c["secret"], C=c["C"]) for c in chosen]
            fee = fee_for(inputs, fee_ppk)
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
                kind=SwapKind.REFUND,
                mint_url=key.mint_url,
                unit=key.unit,
                key_id=key_id,
                token_hash=None,
                inputs=[p.to_input_dict() for p in inputs],
                outputs=[output_record(o, Owner.USER) for o in user_out]
                + [output_record(o, Owner.NODE) for o in node_out],
                user_amount=user_amount,
            )
        with self.mints.in_flight.executing(swap_id):
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
                    await recover_refund(self.db, self.mints, swap)
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

    async def _open(self, key_id: int, mint_url: str) -> Refund | None:
        """The key's last refund token again, as long as the mint says it is unspent.

        A refund still pending (the mint did not answer) is settled first; one that stays pending
        means no new refund yet (503): its token may be on its way."""
        async with self.db.read() as conn:
            pending = await wallet_store.refund_swaps(conn, key_id, SwapState.PENDING)
        for swap in pending:
            # another live process's swap may not have reached the mint yet: recovery would undo it
            # under its feet; it is left to that process (or to the recovery job once it is old)
            settle_now = swap.executor == PROCESS or process_is_dead(swap.executor)
            settle_now = settle_now or swap.created_at < accounts.now_ms() - IN_FLIGHT_GRACE_S * 1000
            if (
                swap.id in self.mints.in_flight
                or not settle_now
                or await recover_refund(self.db, self.mints, swap) == SwapState.PENDING
            ):
                raise ServiceUnavailable(
                    "A refund of this key is still being settled with the mint; ask again shortly",
                    code="refund_pending",
                )
        while True:  # one batch normally; more only for keys refunded before tokens were checked
            async with self.db.read() as conn:
                candidates = await refund_store.open_refunds(conn, key_id)
            if not candidates:
                return None
            unspent = await self._unspent(mint_url, candidates)
            async with self.db.write() as conn:
                await refund_store.mark_spent(conn, [s.id for s in candidates if s.id not in unspent])
                for swap in candidates:
                    if swap.id in unspent:
                        assert swap.result_token is not None
                        await wallet_store.mark_collected(conn, swap.id)
                        debited = await accounts.refund_amount(conn, key_id, swap.id) or 0
                        return Refund(swap.result_token, swap.user_amount, swap.unit, swap.mint_url, debited)

    async def _unspent(self, mint_url: str, swaps: list[wallet_store.SwapRow]) -> set[str]:
        """Which of these refunds' tokens are wholly unspent at the mint (NUT-07). A token the user
        spent even in part, or is spending (PENDING), was taken."""
        ys: dict[str, list[str]] = {}
        for swap in swaps:
            try:
                ys[swap.id] = [p.Y for p in decode_token(swap.result_token or "").proofs]
            except (TokenError, ValueError):
                ys[swap.id] = []
        try:
            states = await self.mints.client(mint_url).check_state([y for v in ys.values() for y in v])
        except (CashuError, KeyError):
            raise ServiceUnavailable(
                "The mint cannot say now whether your last refund token was redeemed; your balance is "
                "unchanged, ask again shortly",
                code="mint_unavailable",
            ) from None
        return {sid for sid, v in ys.items() if v and all(states.get(y) == "UNSPENT" for y in v)}


async def recover_refund(db: Database, mints: MintRegistry, swap: wallet_store.SwapRow) -> SwapState:
    """A refund whose answer was lost: its token kept for the user, or the debit given back."""
    return await recover_from_mint(db, mints, swap, revert_refund)


OPERATION = Operation(SwapKind.REFUND, recover_refund, revert_refund)
