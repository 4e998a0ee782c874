"""Taking a token of a mint the node does not trust: melt it there, mint the value at the primary.

Off unless the operator sets ``FOREIGN_MINT_MAX_SATS``. The steps, each committed before the next:
1. quote: an invoice of the primary mint (NUT-04) for what the token pays after the foreign mint's
   input fee and Lightning fee reserve (NUT-05 melt quote), re-quoted until it fits the token;
2. record the conversion (the user's proofs, both quotes and our fresh outputs at the primary);
3. melt the proofs at the foreign mint, which pays the invoice;
4. mint our outputs at the primary, store the proofs and credit the key in one transaction.
A crash or a lost answer anywhere leaves a pending record that ``recover_conversion`` settles from
the two mints' records: paid → mint (or restore) here; never paid → the token is the user's again.
The fee reserve is paid in full (no change outputs: the node keeps no eCash of untrusted mints).

The token's mint URL is the user's choice, so the node calls it only as the outbound policy allows
(``routstr.net.outbound``: https, public addresses unless FOREIGN_MINT_ALLOW_HTTP / _PRIVATE say
otherwise, checked again as it connects, no redirects), and tells the user what failed in its own
words, never the mint's text or a connection error; the details are logged for the operator.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from routstr.cashu.errors import CashuError, MintError, MintUnavailable, TokenError
from routstr.cashu.mint_client import MintClient
from routstr.cashu.nut00 import Proof
from routstr.cashu.nut02 import fee_for, fee_table, split_amount
from routstr.cashu.nut04 import MintQuote
from routstr.cashu.nut05 import MeltQuote, MeltQuoteState
from routstr.cashu.outputs import PreparedOutput, prepare_outputs
from routstr.cashu.tokens import Token, resolve_short_keyset_ids
from routstr.core.errors import ApiError, InvalidRequest, ServiceUnavailable
from routstr.core.swap_kinds import Owner, SwapKind, SwapState
from routstr.net.addresses import DestinationError, origin_of
from routstr.net.outbound import refused
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.inflight import MELT_GRACE_S
from routstr.wallet.mints import MintRegistry, canonical_mint_url
from routstr.wallet.swaps import Operation, SwapOutcome, complete_swap, output_record, prepared_from_record

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
QUOTE_ATTEMPTS = 3
NOT_CALLED = (
    "This node does not contact the token's mint (other mints must be public https servers); your "
    "token was not used"
)
NO_ANSWER = "The token's mint did not answer as a mint should; your token was not used, try again later"


class ForeignTokenRefused(InvalidRequest):
    code = "mint_not_accepted"


def _not_called(mint: str, e: DestinationError) -> ApiError:
    """A mint URL the policy refuses (final) or whose name does not resolve (maybe later)."""
    log.info("foreign mint %s: not called: %s", origin_of(mint), e.message)
    if e.code == "destination_unresolvable":
        return ServiceUnavailable(NO_ANSWER, code="mint_unavailable")
    return ForeignTokenRefused(NOT_CALLED)


def _failed(mint: str, e: CashuError, what: str) -> ApiError:
    """What the user is told when a call to the token's mint failed: never the mint's words."""
    no = refused(e)
    if no is not None:  # its name resolved elsewhere by the time the node connected
        return _not_called(mint, no)
    log.info("foreign mint %s: %s failed: %s", origin_of(mint), what, e)
    return ServiceUnavailable(NO_ANSWER, code="mint_unavailable")


@asynccontextmanager
async def _foreign(mints: MintRegistry, url: str) -> AsyncIterator[MintClient]:
    """A client of a foreign mint over a session its outbound policy guards, for one conversion;
    the URL is checked first, so a refusal is told before anything is spent."""
    assert mints.foreign is not None
    policy = mints.foreign.outbound
    try:
        await policy.check(canonical_mint_url(url))
    except DestinationError as e:
        raise _not_called(url, e) from None
    async with policy.session(20.0) as session:
        yield mints.foreign_client(url, session)


async def foreign_inputs(mints: MintRegistry, token: Token) -> tuple[list[Proof], int]:
    """The token's proofs with full keyset ids, and its mint's input fee for them."""
    async with _foreign(mints, token.mint) as client:
        return await _inputs(client, token)


async def _inputs(client: MintClient, token: Token) -> tuple[list[Proof], int]:
    try:
        keysets = await client.keysets()
        proofs = resolve_short_keyset_ids(token.proofs, [k.id for k in keysets])
    except (TokenError, ValueError) as e:
        raise InvalidRequest(f"Invalid Cashu token: {e}", code="invalid_token") from None
    except CashuError as e:
        raise _failed(token.mint, e, "keysets") from None
    return proofs, fee_for(proofs, fee_table(keysets))


async def convert(
    db: Database,
    mints: MintRegistry,
    token: Token,
    identity: tuple[str, str | None],
    key_id: int | None,
    new_key: tuple[str, str],
) -> SwapOutcome:
    """Credit ``token`` (a foreign mint's) to ``key_id``, or to a new key (hash, kind), at the primary.
    ``identity``: what the token is recorded by, its identity and holder mark (``cashu.identity``)."""
    policy = mints.foreign
    assert policy is not None and token.unit == "sat"
    if token.amount > policy.max_sats:
        raise ForeignTokenRefused(
            f"Tokens of mint {token.mint} are taken up to {policy.max_sats} sat; this one is {token.amount}",
            details={"mint": token.mint, "accepted_mints": list(mints.urls)},
        )
    async with _foreign(mints, token.mint) as foreign:
        return await _convert(db, mints, foreign, token, identity, key_id, new_key)


async def _convert(
    db: Database,
    mints: MintRegistry,
    foreign: MintClient,
    token: Token,
    identity: tuple[str, str | None],
    key_id: int | None,
    new_key: tuple[str, str],
) -> SwapOutcome:
    assert mints.foreign is not None
    proofs, input_fee = await _inputs(foreign, token)
    melt, mint_quote = await _quotes(mints, foreign, token, input_fee)
    home = mints.primary
    active = await mints.active_keyset(home, "sat")
    prepared = prepare_outputs(split_amount(mint_quote.amount), active.id)
    swap_id = uuid.uuid4().hex
    detail = {"foreign_mint": token.mint, "melt_quote": melt.quote, "mint_quote": mint_quote.quote}
    async with db.write() as conn:
        since = accounts.now_ms() - DAY_MS
        if await wallet_store.converted_since(conn, since) + token.amount > mints.foreign.daily_sats:
            raise ServiceUnavailable(
                "This node has converted as many foreign-mint tokens today as it takes; your token was "
                f"not used: pay with a token of {', '.join(mints.urls)}, or try tomorrow",
                code="foreign_mint_limit",
            )
        if key_id is None:
            key_id = await accounts.create_key(conn, new_key[0], new_key[1], home, "sat")
        await wallet_store.insert_swap(
            conn,
            swap_id=swap_id,
            kind=SwapKind.CONVERT,
            mint_url=home,
            unit="sat",
            key_id=key_id,
            token_hash=identity[0],
            holder_mark=identity[1],
            inputs=[p.to_input_dict() for p in proofs],
            outputs=[output_record(o, Owner.NODE) for o in prepared],
            user_amount=token.amount,
            detail=detail,
        )
    with mints.in_flight.executing(swap_id):
        try:
            paid = await foreign.melt(melt.quote, proofs)
        except MintError as e:  # refused: nothing was paid, the proofs are the user's again
            await _abandon(db, swap_id)
            if e.is_already_spent:
                raise InvalidRequest(
                    "This Cashu token has already been spent", code="token_already_spent"
                ) from None
            log.info("conversion %s: the token's mint refused the melt: %s", swap_id, e.detail)
            raise InvalidRequest(
                "The token's mint refused to pay with it; your token was not used", code="invalid_token"
            ) from None
        except MintUnavailable as e:
            log.info("conversion %s: no answer to the melt yet: %s", swap_id, e)
            raise _pending() from None
        if paid.state != MeltQuoteState.PAID:
            raise _pending()
        return await _mint_here(db, mints, swap_id, mint_quote.quote, prepared)


async def _quotes(
    mints: MintRegistry, foreign: MintClient, token: Token, input_fee: int
) -> tuple[MeltQuote, MintQuote]:
    """A primary-mint invoice and the foreign mint's melt quote for it whose total fits the token."""
    home = mints.client(mints.primary)
    target = token.amount - input_fee
    for _ in range(QUOTE_ATTEMPTS):
        if target <= 0:
            break
        try:
            invoice = await home.mint_quote(target)
        except CashuError as e:
            log.warning("conversion: the primary mint gave no invoice: %s", e)
            raise ServiceUnavailable(
                "The node's mint is unavailable; your token was not used, try again later",
                code="mint_unavailable",
            ) from None
        try:
            melt = await foreign.melt_quote(invoice.bolt11)
        except CashuError as e:
            raise _failed(token.mint, e, "melt quote") from None
        over = melt.amount_needed(input_fee) - token.amount
        if over <= 0:
            return melt, invoice
        target -= over
    raise ForeignTokenRefused(
        f"The token of {token.mint} is too small to pay that mint's fees for converting it",
        details={"mint": token.mint, "accepted_mints": list(mints.urls)},
    )


async def _mint_here(
    db: Database, mints: MintRegistry, swap_id: str, quote_id: str, prepared: list[PreparedOutput]
) -> SwapOutcome:
    try:
        sigs = await mints.client(mints.primary).mint(quote_id, [o.to_blinded_message() for o in prepared])
    except CashuError as e:  # the invoice was paid: recovery mints (or restores) it later
        log.warning("conversion %s: minting at the primary failed for now: %s", swap_id, e)
        raise _pending() from None
    return await complete_swap(db, mints, swap_id, sigs)


def _pending() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Converting the token is under way (a mint has not finished); it is credited once it "
        "finishes: send the same token again shortly",
        code="conversion_pending",
    )


async def _abandon(db: Database, swap_id: str) -> None:
    async with db.write() as conn:
        await wallet_store.abandon_redeem(conn, swap_id)


async def undo_conversion(db: Database, swap_id: str, *, inputs_spent: bool, error: str) -> None:
    """A conversion whose melt never happened: the token is the user's again."""
    await _abandon(db, swap_id)


async def recover_conversion(db: Database, mints: MintRegistry, swap: wallet_store.SwapRow) -> SwapState:
    """Settle a pending conversion from the mints' records; returns its state afterwards."""
    d = swap.detail or {}
    if mints.foreign is None or not mints.foreign.allows(str(d.get("foreign_mint", ""))):
        log.error("conversion %s: foreign mints are off; it stays pending", swap.id)
        return SwapState.PENDING
    try:
        async with _foreign(mints, str(d["foreign_mint"])) as foreign:
            return await _settle(db, mints, foreign, swap)
    except (CashuError, ApiError) as e:  # ApiError: the policy refuses its mint now (stays pending)
        log.warning("conversion %s could not be settled yet: %s", swap.id, e)
        return SwapState.PENDING


async def _settle(
    db: Database, mints: MintRegistry, foreign: MintClient, swap: wallet_store.SwapRow
) -> SwapState:
    d = swap.detail or {}
    prepared = [prepared_from_record(r) for r in swap.outputs]
    melt = await foreign.melt_quote_state(str(d["melt_quote"]))
    if melt.state == MeltQuoteState.PENDING:
        return SwapState.PENDING
    if melt.state == MeltQuoteState.PAID:
        home = mints.client(swap.mint_url)
        restored = {bm.B_: sig for bm, sig in await home.restore([p.to_blinded_message() for p in prepared])}
        if prepared and all(p.B_ in restored for p in prepared):
            await complete_swap(db, mints, swap.id, [restored[p.B_] for p in prepared])
        else:
            await _mint_here(db, mints, swap.id, str(d["mint_quote"]), prepared)
        return SwapState.DONE
    states = await foreign.check_state([Proof.from_dict(p).Y for p in swap.inputs])
    if set(states.values()) == {"UNSPENT"}:  # never melted: the token is the user's again
        await _abandon(db, swap.id)
        return SwapState.FAILED
    return SwapState.PENDING


OPERATION = Operation(SwapKind.CONVERT, recover_conversion, undo_conversion, MELT_GRACE_S)
