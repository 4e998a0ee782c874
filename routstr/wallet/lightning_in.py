"""Paying with Lightning: an invoice of the primary mint (NUT-04) that, once paid, becomes eCash in
the node's wallet and credit on a key, exactly once.

The steps, each committed before the next:
1. ask the mint for a quote (its bolt11) and record the invoice under a random id that only its
   creator gets (the key a "create" invoice makes is derived from that id), with the bolt11's payment
   hash; whoever holds the whole bolt11 (its creator, its payer) can find the invoice again by it
   (``recover``, as Routstr Core does), its payment hash alone (which every routing node sees) cannot;
2. when the mint says the quote is paid (a status poll or the watcher, whichever comes first): create
   the key if needed, record our outputs and attach them to the invoice, once across all processes;
3. ask the mint to sign them, then store the proofs and credit the key in one transaction.
A crash after 2 is finished by ``finish_mint`` (NUT-09 restore, or minting again with the same
outputs), at start-up or by the watcher.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, replace

from routstr.cashu.errors import CashuError, MintError
from routstr.cashu.nut02 import split_amount
from routstr.cashu.nut04 import MintQuoteState
from routstr.cashu.outputs import PreparedOutput, prepare_outputs
from routstr.core import bolt11, failpoints
from routstr.core.errors import InvalidRequest, NotFound, ServiceUnavailable
from routstr.core.keys import SK_PREFIX, key_hash
from routstr.core.sealed import SealError, seal, unseal
from routstr.core.swap_kinds import Owner, SwapKind, SwapState
from routstr.storage import accounts, invoice_store, wallet_store
from routstr.storage.db import Database
from routstr.wallet.mints import MintRegistry
from routstr.wallet.swaps import Operation, complete_swap, output_record, prepared_from_record

log = logging.getLogger(__name__)

MAX_INVOICE_SATS = 10_000_000
_INVOICE_ID = re.compile(r"[0-9a-f]{32}")  # secrets.token_hex(16)
CLAIM_WAIT_S = 10.0
TOPUP_KEY_PURPOSE = "lightning-topup-key"  # the seal of the key a top-up invoice was made with


class _Taken(Exception):
    """Another request (or process) attached the mint step first: roll ours back."""


@dataclass(frozen=True, slots=True)
class InvoiceStatus:
    invoice: invoice_store.InvoiceRow
    # settled: a "create" invoice's key (to the holder of its id or bolt11); a "topup" invoice's, the key
    # it was made with (to the holder of its id only: ``recover`` withholds it)
    api_key: str | None
    balance_msat: int | None


def check_request(amount_sats: object, purpose: object) -> int:
    """The amount, once amount and purpose are checked: before anything happens (a Cashu token as the
    key of a top-up is redeemed)."""
    if purpose not in ("create", "topup"):
        raise InvalidRequest('\'purpose\' must be "create" or "topup"', details={"param": "purpose"})
    if (
        not isinstance(amount_sats, int)
        or isinstance(amount_sats, bool)
        or not 0 < amount_sats <= MAX_INVOICE_SATS
    ):
        raise InvalidRequest(
            f"'amount_sats' must be a whole number from 1 to {MAX_INVOICE_SATS}",
            details={"param": "amount_sats"},
        )
    return amount_sats


class Invoices:
    def __init__(self, db: Database, mints: MintRegistry, secret: bytes) -> None:
        self.db = db
        self.mints = mints
        self.secret = secret
        self._inflight: dict[str, asyncio.Future[invoice_store.InvoiceRow]] = {}

    def created_key(self, invoice_id: str) -> str:
        mac = hmac.new(self.secret, b"invoice:" + invoice_id.encode(), hashlib.sha256)
        return SK_PREFIX + mac.hexdigest()[:32]

    async def create(
        self, amount_sats: int, purpose: str, key_id: int | None, api_key: str | None = None
    ) -> invoice_store.InvoiceRow:
        """``api_key``: a top-up's, the ``sk-`` key its creator holds, kept sealed for the paid status
        (routstr-sdk requires ``api_key`` on every paid status); the id is only the creator's."""
        check_request(amount_sats, purpose)
        if purpose == "topup":
            async with self.db.read() as conn:
                key = await accounts.key_by_id(conn, key_id) if key_id is not None else None
            if key is None:
                raise InvalidRequest("A top-up invoice needs the key to credit (Authorization: Bearer …)")
            if key.mint_url != self.mints.primary or key.unit != "sat":
                raise InvalidRequest(
                    f"This key holds {key.unit} eCash of {key.mint_url}; Lightning top-ups arrive as sat "
                    f'eCash of {self.mints.primary}: create a new key with purpose "create"'
                )
        try:
            quote = await self.mints.client(self.mints.primary).mint_quote(amount_sats, "sat")
        except CashuError as e:
            raise ServiceUnavailable(f"Mint {self.mints.primary} could not make an invoice: {e}") from None
        try:
            payment_hash: str | None = bolt11.payment_hash(quote.bolt11)
        except ValueError as e:  # still payable; only recovery by bolt11 and the hash are missing
            log.warning("mint %s gave an invoice without a readable payment hash: %s", self.mints.primary, e)
            payment_hash = None
        invoice_id = secrets.token_hex(16)
        async with self.db.write() as conn:
            await invoice_store.insert_invoice(
                conn,
                id=invoice_id,
                quote_id=quote.quote,
                mint_url=self.mints.primary,
                unit="sat",
                amount=amount_sats,
                bolt11=quote.bolt11,
                purpose=purpose,
                key_id=key_id if purpose == "topup" else None,
                expires_at=quote.expiry * 1000 if quote.expiry else None,
                payment_hash=payment_hash,
                api_key_sealed=(
                    seal(self.secret, TOPUP_KEY_PURPOSE, api_key) if purpose == "topup" and api_key else None
                ),
            )
            row = await invoice_store.invoice_by_id(conn, invoice_id)
        assert row is not None
        return row

    async def status(self, invoice_id: str) -> InvoiceStatus:
        """Where the invoice stands, settling it first if the mint says it is paid."""
        inv = await self.settle(invoice_id)
        api_key = balance = None
        if inv.state == invoice_store.SETTLED and inv.key_id is not None:
            async with self.db.read() as conn:
                key = await accounts.key_by_id(conn, inv.key_id)
            balance = key.balance_msat if key else None
            if inv.purpose == "create":
                api_key = self.created_key(inv.id)
            elif inv.api_key_sealed is not None:
                api_key = self._topup_key(inv)
        return InvoiceStatus(inv, api_key, balance)

    def _topup_key(self, inv: invoice_store.InvoiceRow) -> str | None:
        """The key a top-up was made with; None if its seal does not open (the node's secret changed):
        the top-up is credited all the same, only the status cannot show the key."""
        assert inv.api_key_sealed is not None
        try:
            return unseal(self.secret, TOPUP_KEY_PURPOSE, inv.api_key_sealed)
        except SealError:
            log.warning("invoice %s: the sealed top-up key does not open with this node's secret", inv.id)
            return None

    async def recover(self, invoice: str) -> InvoiceStatus:
        """The status of the invoice with this bolt11: the way back to a "create" invoice's key when
        its id was lost. The whole bolt11 must match, not only its payment hash. A "topup" invoice's
        key and balance are withheld: a bolt11 is seen by whoever pays it (a custodial wallet, a
        friend), who must not get the whole balance of the key it tops up."""
        try:
            found = bolt11.payment_hash(invoice)
        except ValueError as e:
            raise InvalidRequest(
                f"'bolt11' is not a bolt11 invoice: {e}", details={"param": "bolt11"}
            ) from None
        wanted = bolt11.normalize(invoice)
        async with self.db.read() as conn:
            rows = await invoice_store.invoices_by_payment_hash(conn, found)
        for row in rows:
            if bolt11.normalize(row.bolt11) == wanted:
                found_status = await self.status(row.id)
                if row.purpose == "topup":
                    return replace(found_status, api_key=None, balance_msat=None)
                return found_status
        raise NotFound("No invoice of this node has this bolt11")

    async def settle(self, invoice_id: str) -> invoice_store.InvoiceRow:
        """Settle the invoice if it is paid; concurrent callers in this process share one attempt."""
        running = self._inflight.get(invoice_id)
        if running is not None:
            return await asyncio.shield(running)
        task = asyncio.ensure_future(self._settle(invoice_id))
        self._inflight[invoice_id] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight.pop(invoice_id, None)
            else:
                task.add_done_callback(lambda _: self._inflight.pop(invoice_id, None))

    async def _settle(self, invoice_id: str) -> invoice_store.InvoiceRow:
        inv = None
        if _INVOICE_ID.fullmatch(invoice_id):  # anything else (a NUL, megabytes) never reaches SQL
            async with self.db.read() as conn:
                inv = await invoice_store.invoice_by_id(conn, invoice_id)
        if inv is None:
            raise NotFound("Unknown invoice")
        if inv.state != invoice_store.PENDING:
            return inv
        if inv.swap_id is not None:  # paid; the mint step was cut short: finish it
            await finish_mint(self.db, self.mints, inv.swap_id)
            return await self._reload(inv.id)
        try:
            quote = await self.mints.client(inv.mint_url).mint_quote_state(inv.quote_id)
        except CashuError as e:
            log.warning("invoice %s: mint could not say whether it is paid: %s", inv.id, e)
            return inv
        if quote.state == MintQuoteState.UNPAID:
            if inv.expires_at is not None and accounts.now_ms() > inv.expires_at:
                async with self.db.write() as conn:
                    await invoice_store.set_state(conn, inv.id, invoice_store.EXPIRED)
                return await self._reload(inv.id)
            return inv
        swap_id = await self._claim(inv)
        if swap_id is not None:
            await finish_mint(self.db, self.mints, swap_id)
            return await self._reload(inv.id)
        for _ in range(int(CLAIM_WAIT_S / 0.05)):  # another process is minting it: wait for the result
            inv = await self._reload(inv.id)
            if inv.state != invoice_store.PENDING:
                break
            await asyncio.sleep(0.05)
        return inv

    async def _claim(self, inv: invoice_store.InvoiceRow) -> str | None:
        """Record the outputs for a paid invoice (and the key a "create" invoice makes), once."""
        active = await self.mints.active_keyset(inv.mint_url, inv.unit)
        prepared = prepare_outputs(split_amount(inv.amount), active.id)
        swap_id = uuid.uuid4().hex
        try:
            await self._record(inv, swap_id, prepared)
        except _Taken:
            return None
        return swap_id

    async def _record(
        self, inv: invoice_store.InvoiceRow, swap_id: str, prepared: list[PreparedOutput]
    ) -> None:
        async with self.db.write() as conn:
            key_id = inv.key_id
            if key_id is None:
                khash = key_hash(self.secret, self.created_key(inv.id))
                existing = await accounts.key_by_hash(conn, khash)
                key_id = (
                    existing.id
                    if existing
                    else await accounts.create_key(conn, khash, "sk", inv.mint_url, inv.unit)
                )
            if not await invoice_store.claim_for_minting(conn, inv.id, swap_id, key_id):
                raise _Taken
            await wallet_store.insert_swap(
                conn,
                swap_id=swap_id,
                kind=SwapKind.MINT,
                mint_url=inv.mint_url,
                unit=inv.unit,
                key_id=key_id,
                token_hash=None,
                inputs=[],
                outputs=[output_record(o, Owner.NODE) for o in prepared],
                detail={"quote": inv.quote_id, "invoice": inv.id},
            )

    async def settle_all(self) -> dict[str, int]:
        """The watcher: settle every pending invoice the mint says is paid (nobody needs to poll)."""
        async with self.db.read() as conn:
            pending = await invoice_store.pending_invoices(conn)
        counts: dict[str, int] = {}
        for inv in pending:
            state = (await self.settle(inv.id)).state
            counts[state] = counts.get(state, 0) + 1
        return counts

    async def _reload(self, invoice_id: str) -> invoice_store.InvoiceRow:
        async with self.db.read() as conn:
            inv = await invoice_store.invoice_by_id(conn, invoice_id)
        assert inv is not None
        return inv


async def finish_mint(db: Database, mints: MintRegistry, swap_id: str) -> SwapState:
    """Get the signatures for a recorded mint step (restore first: it may have happened) and
    credit the key; returns the swap's state afterwards."""
    async with db.read() as conn:
        swap = await wallet_store.swap_by_id(conn, swap_id)
    if swap is None:
        return SwapState.FAILED
    if swap.state == SwapState.PENDING:
        client = mints.client(swap.mint_url)
        prepared = [prepared_from_record(r) for r in swap.outputs]
        blinded = [p.to_blinded_message() for p in prepared]
        try:
            signed = {bm.B_: sig for bm, sig in await client.restore(blinded)}
            if not all(p.B_ in signed for p in prepared):
                sigs = await client.mint(str((swap.detail or {})["quote"]), blinded)
                signed = {p.B_: s for p, s in zip(prepared, sigs, strict=True)}
        except MintError as e:
            log.error("mint step %s refused by the mint (%s): left pending for the operator", swap.id, e)
            return SwapState.PENDING
        except CashuError as e:
            log.warning("mint step %s not finished yet: %s", swap.id, e)
            return SwapState.PENDING
        failpoints.hit("invoice.after_mint")  # the mint signed; nothing of it is stored yet
        await complete_swap(db, mints, swap.id, [signed[p.B_] for p in prepared])
    async with db.write() as conn:
        inv = await invoice_store.invoice_by_swap(conn, swap_id)
        if inv is not None:
            await invoice_store.set_state(conn, inv.id, invoice_store.SETTLED)
    return SwapState.DONE


async def recover_mint(db: Database, mints: MintRegistry, swap: wallet_store.SwapRow) -> SwapState:
    """A paid invoice's mint step cut short: finished (restore, or minting with the same outputs)."""
    return await finish_mint(db, mints, swap.id)


# never undone: the invoice is paid, so the mint step is finished, or left pending for the operator
OPERATION = Operation(SwapKind.MINT, recover_mint, None)
