"""MintClient's Lightning half (NUT-04/05/08/23, bolt11) against REAL Nutshell mints (FakeWallet backend).

The shared `mint` pays invoices made by `payee`, a second mint whose FakeWallet never pays incoming
invoices (FAKEWALLET_BRR=False): its quotes stay UNPAID, and an invoice of the melting mint itself is
no use (FakeWallet auto-pays it, so the mint refuses to melt it). Two more mints script the Lightning
outcome of a melt: `failing_mint` (payment FAILED) and `pending_mint` (payment PENDING after 1 s, then
SETTLED when the quote is checked).

Nutshell 0.20.2 + FakeWallet, as measured: fee_reserve = max(2 sat, 1 % of the amount); a payment made
in the melt call costs 1 sat, so change = inputs - amount - input fees - 1; its preimage for a foreign
invoice is 64 zeros.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from routstr.cashu.errors import CashuProtocolError, ErrorCode, MintError, MintUnavailable
from routstr.cashu.mint_client import MintClient
from routstr.cashu.nut00 import BlindedMessage, BlindedSignature, Proof
from routstr.cashu.nut01 import Keyset
from routstr.cashu.nut02 import fee_for, split_amount
from routstr.cashu.nut04 import MintQuote, MintQuoteState
from routstr.cashu.nut05 import MeltQuote, MeltQuoteState, PostMeltBolt11Request
from routstr.cashu.nut08 import (
    blank_output_count,
    prepare_blank_outputs,
    unblind_change,
    unblind_restored_change,
)
from routstr.cashu.nut12 import verify_dleq_proof
from routstr.cashu.outputs import PreparedOutput, prepare_outputs, unblind_signatures
from routstr.devtools.nutshell import NutshellMint

real_mint = pytest.mark.mint  # registered by tests/conftest.py: "runs a real Nutshell mint"

QUOTE_NOT_PAID = 20001  # NUT error codes of the Lightning flows (spec error_codes.md)
QUOTE_ALREADY_ISSUED = 20002
LIGHTNING_PAYMENT_FAILED = 20004
FAKEWALLET_FEE = 1  # what FakeWallet reports as the routing fee of a payment it makes in the melt call
FAKEWALLET_PREIMAGE = "0" * 64  # its preimage for an invoice it did not create


@pytest.fixture(scope="module")
def payee(nutshell_python: Path) -> Iterator[NutshellMint]:
    with NutshellMint("ln-payee", extra_env={"FAKEWALLET_BRR": "False"}) as m:
        yield m


@pytest.fixture(scope="module")
def failing_mint(nutshell_python: Path) -> Iterator[NutshellMint]:
    env = {"FAKEWALLET_PAY_INVOICE_STATE": "FAILED", "FAKEWALLET_PAYMENT_STATE": "FAILED"}
    with NutshellMint("ln-failing", extra_env=env) as m:
        yield m


@pytest.fixture(scope="module")
def pending_mint(nutshell_python: Path) -> Iterator[NutshellMint]:
    env = {"FAKEWALLET_PAY_INVOICE_STATE": "PENDING", "FAKEWALLET_DELAY_OUTGOING_PAYMENT": "1"}
    with NutshellMint("ln-pending", extra_env=env) as m:
        yield m


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def mint_proofs(client: MintClient, amount: int) -> tuple[list[Proof], Keyset]:
    """Buy `amount` sat of eCash the way the node will: quote, (FakeWallet pays), mint, unblind."""
    quote = await client.mint_quote(amount)
    assert (await client.mint_quote_state(quote.quote)).state is MintQuoteState.PAID
    keyset = await client.active_keyset()
    prepared = prepare_outputs(split_amount(amount), keyset.id)
    sigs = await client.mint(quote.quote, [p.to_blinded_message() for p in prepared])
    return unblind_signatures(prepared, sigs, keyset), keyset


async def invoice(payee: NutshellMint, session: aiohttp.ClientSession, amount: int) -> str:
    return (await MintClient(payee.url, session).mint_quote(amount)).bolt11


async def states(client: MintClient, proofs: list[Proof]) -> set[str]:
    return set((await client.check_state([p.Y for p in proofs])).values())


def blinded(prepared: list[PreparedOutput]) -> list[BlindedMessage]:
    return [p.to_blinded_message() for p in prepared]


# --------------------------------------------------------------------------------------------- minting


@real_mint
async def test_mint_quote_paid_mint_issued(mint: NutshellMint, session: aiohttp.ClientSession) -> None:
    client = MintClient(mint.url, session)
    quote = await client.mint_quote(100)
    assert (quote.amount, quote.unit, quote.state) == (100, "sat", MintQuoteState.UNPAID)
    assert quote.bolt11.startswith("lnbc1u")  # 1 µBTC = 100 sat
    assert quote.expiry is not None and quote.expiry > time.time() + 600
    assert not quote.is_paid

    # FakeWallet "pays" the invoice as soon as the mint looks at it
    paid = await client.mint_quote_state(quote.quote)
    assert (paid.quote, paid.bolt11, paid.state) == (quote.quote, quote.bolt11, MintQuoteState.PAID)
    assert paid.is_paid

    keyset = await client.active_keyset()
    prepared = prepare_outputs(split_amount(100), keyset.id)
    sigs = await client.mint(quote.quote, blinded(prepared))
    assert [s.amount for s in sigs] == [4, 32, 64]  # in output order
    proofs = unblind_signatures(prepared, sigs, keyset)  # also verifies the mint's DLEQ proofs
    assert all(p.dleq is not None and verify_dleq_proof(p, keyset.public_key(p.amount)) for p in proofs)
    assert await states(client, proofs) == {"UNSPENT"}
    assert (await client.mint_quote_state(quote.quote)).state is MintQuoteState.ISSUED

    # a quote mints once
    with pytest.raises(MintError) as exc:
        await client.mint(quote.quote, blinded(prepare_outputs(split_amount(100), keyset.id)))
    assert (exc.value.code, exc.value.status) == (QUOTE_ALREADY_ISSUED, 400)

    # and the minted proofs are real money: the mint swaps them
    fresh = prepare_outputs(split_amount(100), keyset.id)
    swapped = unblind_signatures(fresh, await client.swap(proofs, blinded(fresh)), keyset)
    assert sum(p.amount for p in swapped) == 100
    assert await states(client, proofs) == {"SPENT"}


@real_mint
async def test_mint_on_unpaid_quote_is_refused(payee: NutshellMint, session: aiohttp.ClientSession) -> None:
    client = MintClient(payee.url, session)
    quote = await client.mint_quote(10)
    assert (await client.mint_quote_state(quote.quote)).state is MintQuoteState.UNPAID
    keyset = await client.active_keyset()
    prepared = prepare_outputs([2, 8], keyset.id)
    with pytest.raises(MintError) as exc:
        await client.mint(quote.quote, blinded(prepared))
    assert (exc.value.code, exc.value.status) == (QUOTE_NOT_PAID, 400)
    assert (await client.mint_quote_state(quote.quote)).state is MintQuoteState.UNPAID
    assert await client.restore(blinded(prepared)) == []  # nothing was signed


# --------------------------------------------------------------------------------------------- melting


@real_mint
async def test_melt_pays_invoice_and_returns_change(
    mint: NutshellMint, payee: NutshellMint, session: aiohttp.ClientSession
) -> None:
    client = MintClient(mint.url, session)
    inputs, keyset = await mint_proofs(client, 128)  # one 128 proof: overshoots amount + fee reserve
    bolt11 = await invoice(payee, session, 100)

    quote = await client.melt_quote(bolt11)
    assert (quote.amount, quote.fee_reserve, quote.unit) == (100, 2, "sat")
    assert quote.state is MeltQuoteState.UNPAID and not quote.is_paid
    assert quote.request == bolt11.lower() and quote.payment_preimage is None and quote.change == []
    assert quote.expiry is not None and quote.expiry > time.time()
    assert quote.amount_needed() == 102

    # blank outputs sized for the whole excess (28), not only for the fee reserve (2): the mint returns
    # change into at most as many outputs as it gets, largest amounts first
    max_change = 128 - quote.amount
    blank = prepare_blank_outputs(max_change, keyset.id)
    assert len(blank) == blank_output_count(28) == 5 and {b.amount for b in blank} == {1}
    paid = await client.melt(quote.quote, inputs, blinded(blank))
    assert (paid.quote, paid.state, paid.amount, paid.fee_reserve) == (
        quote.quote,
        MeltQuoteState.PAID,
        100,
        2,
    )
    assert paid.is_paid and paid.payment_preimage == FAKEWALLET_PREIMAGE
    assert [c.amount for c in paid.change] == [16, 8, 2, 1]  # 27 = 128 - 100 - 1 sat of fee, largest first
    change = unblind_change(blank, paid.change, keyset)  # verifies the DLEQ proofs too
    assert sum(p.amount for p in change) == max_change - FAKEWALLET_FEE
    assert await states(client, inputs) == {"SPENT"}
    assert await states(client, change) == {"UNSPENT"}

    # the quote keeps the outcome, change included (the recovery path after a lost answer)
    again = await client.melt_quote_state(quote.quote)
    assert again.state is MeltQuoteState.PAID and again.change == paid.change
    assert again.payment_preimage == FAKEWALLET_PREIMAGE

    # change is spendable
    fresh = prepare_outputs(split_amount(27), keyset.id)
    await client.swap(change, blinded(fresh))
    assert await states(client, change) == {"SPENT"}


@real_mint
async def test_melt_with_exact_inputs_uses_fee_reserve_blanks(
    mint: NutshellMint, payee: NutshellMint, session: aiohttp.ClientSession
) -> None:
    """The spec's case: inputs worth exactly amount + fee_reserve, max(ceil(log2(fee_reserve)), 1) blanks."""
    client = MintClient(mint.url, session)
    inputs, keyset = await mint_proofs(client, 102)
    quote = await client.melt_quote(await invoice(payee, session, 100))
    assert sum(p.amount for p in inputs) == quote.amount_needed() == 102
    blank = prepare_blank_outputs(quote.fee_reserve, keyset.id)
    assert len(blank) == 1
    paid = await client.melt(quote.quote, inputs, blinded(blank))
    assert paid.state is MeltQuoteState.PAID
    assert [p.amount for p in unblind_change(blank, paid.change, keyset)] == [1]  # 2 reserved, 1 used

    # without blank outputs the unused reserve is simply kept by the mint
    inputs2, _ = await mint_proofs(client, 102)
    quote2 = await client.melt_quote(await invoice(payee, session, 100))
    paid2 = await client.melt(quote2.quote, inputs2)
    assert paid2.state is MeltQuoteState.PAID and paid2.change == []


@real_mint
async def test_melt_with_input_fees(
    nutshell_fee_mint: NutshellMint, payee: NutshellMint, session: aiohttp.ClientSession
) -> None:
    """At a mint charging 1 sat per input, the inputs must also cover their own fee (NUT-02)."""
    client = MintClient(nutshell_fee_mint.url, session)
    inputs, keyset = await mint_proofs(client, 116)  # 4 + 16 + 32 + 64: input fee 4
    quote = await client.melt_quote(await invoice(payee, session, 50))
    assert (quote.amount, quote.fee_reserve) == (50, 2)

    short = [p for p in inputs if p.amount != 64]  # 52 = amount + fee_reserve, but not the 3 sat fee
    with pytest.raises(MintError) as exc:
        await client.melt(quote.quote, short)
    assert exc.value.code == ErrorCode.TRANSACTION_GENERIC and "not enough inputs" in exc.value.detail
    assert await states(client, short) == {"UNSPENT"}

    fee = fee_for(inputs, await client.fee_ppk_by_keyset())
    assert fee == 4 and quote.amount_needed(fee) == 56
    max_change = 116 - quote.amount - fee
    blank = prepare_blank_outputs(max_change, keyset.id)
    paid = await client.melt(quote.quote, inputs, blinded(blank))
    assert paid.state is MeltQuoteState.PAID
    change = unblind_change(blank, paid.change, keyset)
    assert sum(p.amount for p in change) == max_change - FAKEWALLET_FEE == 61
    assert await states(client, inputs) == {"SPENT"}


@real_mint
async def test_melt_errors(mint: NutshellMint, payee: NutshellMint, session: aiohttp.ClientSession) -> None:
    client = MintClient(mint.url, session)
    inputs, _ = await mint_proofs(client, 64)
    quote = await client.melt_quote(await invoice(payee, session, 50))
    paid = await client.melt(quote.quote, inputs)
    assert paid.state is MeltQuoteState.PAID

    # a paid quote cannot be melted again ...
    more, _ = await mint_proofs(client, 64)
    with pytest.raises(MintError) as exc:
        await client.melt(quote.quote, more)
    assert exc.value.code == ErrorCode.TRANSACTION_GENERIC and "not unpaid" in exc.value.detail
    # ... and spent proofs cannot pay another one
    quote2 = await client.melt_quote(await invoice(payee, session, 50))
    with pytest.raises(MintError) as exc:
        await client.melt(quote2.quote, inputs)
    assert exc.value.is_already_spent and exc.value.code == ErrorCode.PROOFS_ALREADY_SPENT
    # too little: refused before anything is paid, the inputs stay free
    small, _ = await mint_proofs(client, 32)
    with pytest.raises(MintError) as exc:
        await client.melt(quote2.quote, small)
    assert exc.value.code == ErrorCode.TRANSACTION_GENERIC
    assert await states(client, small) == {"UNSPENT"}
    assert (await client.melt_quote_state(quote2.quote)).state is MeltQuoteState.UNPAID

    # Nutshell answers an unexpected exception with code 0: for a melt that is not a definite "no"
    with pytest.raises(MintUnavailable) as unavailable:
        await client.melt("no-such-quote", more)
    assert unavailable.value.maybe_processed and unavailable.value.status == 400
    assert await states(client, more) == {"UNSPENT"}
    with pytest.raises(MintError) as exc:  # a quote check has no such doubt
        await client.melt_quote_state("no-such-quote")
    assert exc.value.code == 0

    # an invoice the mint already paid cannot be quoted again
    with pytest.raises(MintError) as exc:
        await client.melt_quote(quote.request or "")
    assert exc.value.code == ErrorCode.TRANSACTION_GENERIC
    # garbage is not an invoice
    with pytest.raises(MintError):
        await client.melt_quote("lnbc1notaninvoice")


@real_mint
async def test_failed_payment_releases_inputs(
    failing_mint: NutshellMint, payee: NutshellMint, session: aiohttp.ClientSession
) -> None:
    client = MintClient(failing_mint.url, session)
    inputs, keyset = await mint_proofs(client, 64)
    quote = await client.melt_quote(await invoice(payee, session, 50))
    blank = prepare_blank_outputs(64 - quote.amount, keyset.id)
    with pytest.raises(MintError) as exc:
        await client.melt(quote.quote, inputs, blinded(blank))
    assert exc.value.code == LIGHTNING_PAYMENT_FAILED
    # a definite failure: the mint rolled back, the inputs are free and the quote can be retried
    assert await states(client, inputs) == {"UNSPENT"}
    assert (await client.melt_quote_state(quote.quote)).state is MeltQuoteState.UNPAID
    fresh = prepare_outputs([64], keyset.id)
    await client.swap(inputs, blinded(fresh))


@real_mint
async def test_pending_melt_settles_on_state_check(
    pending_mint: NutshellMint, payee: NutshellMint, session: aiohttp.ClientSession
) -> None:
    client = MintClient(pending_mint.url, session)
    inputs, keyset = await mint_proofs(client, 64)
    quote = await client.melt_quote(await invoice(payee, session, 50))
    blank = prepare_blank_outputs(64 - quote.amount, keyset.id)

    pending = await client.melt(quote.quote, inputs, blinded(blank))
    assert pending.state is MeltQuoteState.PENDING and not pending.is_paid
    assert pending.change == [] and pending.payment_preimage is None
    assert await states(client, inputs) == {"PENDING"}
    # locked inputs cannot pay anything else meanwhile
    other = await client.melt_quote(await invoice(payee, session, 50))
    with pytest.raises(MintError) as exc:
        await client.melt(other.quote, inputs)
    assert exc.value.is_pending, exc.value

    # the state check asks the backend, which now reports the payment settled (without a fee figure,
    # so the whole reserve comes back)
    settled = await client.melt_quote_state(quote.quote)
    assert settled.state is MeltQuoteState.PAID
    change = unblind_change(blank, settled.change, keyset)
    assert sum(p.amount for p in change) == 64 - quote.amount == 14
    assert await states(client, inputs) == {"SPENT"}
    assert await states(client, change) == {"UNSPENT"}


@real_mint
async def test_lost_melt_answer_is_recovered(
    pending_mint: NutshellMint, payee: NutshellMint, session: aiohttp.ClientSession
) -> None:
    """The melt's answer is lost (timeout while the mint pays): the quote's state tells what happened."""
    client = MintClient(pending_mint.url, session)
    inputs, keyset = await mint_proofs(client, 64)
    quote = await client.melt_quote(await invoice(payee, session, 50))
    blank = prepare_blank_outputs(64 - quote.amount, keyset.id)
    with pytest.raises(MintUnavailable) as exc:
        await client.melt(quote.quote, inputs, blinded(blank), timeout_s=0.3)
    assert exc.value.maybe_processed  # the payment may have gone out: the inputs must not be reused

    deadline = time.monotonic() + 10
    state = await client.melt_quote_state(quote.quote)
    while state.state is not MeltQuoteState.PAID and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        state = await client.melt_quote_state(quote.quote)
    assert state.state is MeltQuoteState.PAID
    assert await states(client, inputs) == {"SPENT"}
    change = unblind_change(blank, state.change, keyset)
    # NUT-09 restore of the blank outputs finds the same change
    restored = unblind_restored_change(blank, await client.restore(blinded(blank)), keyset)
    assert sorted((p.secret, p.C, p.amount) for p in restored) == sorted(
        (p.secret, p.C, p.amount) for p in change
    )
    assert sum(p.amount for p in change) == 14


# --------------------------------------------------------------------------------------------- parsing


def test_mint_quote_parsing_is_strict() -> None:
    good = {"quote": "q", "request": "lnbc1", "amount": 5, "unit": "sat", "state": "PAID", "expiry": None}
    assert MintQuote.from_dict({**good, "pubkey": None, "amount_paid": 5}).state is MintQuoteState.PAID
    for bad in (
        {**good, "state": "SETTLED"},
        {**good, "amount": True},
        {**good, "amount": -1},
        {**good, "expiry": "soon"},
        {k: v for k, v in good.items() if k != "request"},
        {**good, "quote": ""},
    ):
        with pytest.raises(ValueError):
            MintQuote.from_dict(bad)


def test_melt_quote_parsing_is_strict() -> None:
    good = {"quote": "q", "amount": 5, "fee_reserve": 2, "unit": "sat", "state": "PENDING", "expiry": 1}
    parsed = MeltQuote.from_dict({**good, "paid": False, "change": None, "payment_preimage": None})
    assert parsed.state is MeltQuoteState.PENDING and parsed.change == [] and parsed.request is None
    for bad in (
        {**good, "state": "ISSUED"},
        {**good, "fee_reserve": 1.5},
        {k: v for k, v in good.items() if k != "fee_reserve"},
        {**good, "change": {}},
        {**good, "change": [{"amount": 1, "id": "00", "C_": "zz"}]},
        {**good, "payment_preimage": 7},
    ):
        with pytest.raises(ValueError):
            MeltQuote.from_dict(bad)


def test_melt_request_body() -> None:
    proof = Proof(amount=1, id="00ad", secret="s", C="02" + "11" * 32)
    body = PostMeltBolt11Request(quote="q", inputs=[proof]).to_dict()
    assert body == {"quote": "q", "inputs": [proof.to_input_dict()]}  # no empty outputs, no prefer_async


def test_unblind_change_rejects_more_change_than_blanks() -> None:
    keyset_id = "00ad268c4d1f5826"
    blank = prepare_blank_outputs(1, keyset_id)
    sig = BlindedSignature(amount=1, id=keyset_id, C_="02" + "11" * 32)
    with pytest.raises(CashuProtocolError):
        unblind_change(blank, [sig, sig], Keyset(id=keyset_id, unit="sat", keys={}))
