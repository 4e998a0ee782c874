"""Finishing a recorded swap once the mint's signatures are in hand (live or restored), and what
every operation declares about its swaps for crash recovery (``Operation``).

Shared by the operations (redeem, refund, withdraw, convert, mint, melt) and crash recovery so that a
swap ends the same way whichever path reaches it, and only once: the pending→done transition is the
guard.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from routstr.cashu.errors import CashuError
from routstr.cashu.nut00 import BlindedSignature, Proof
from routstr.cashu.nut01 import Keyset
from routstr.cashu.outputs import PreparedOutput, unblind_signatures
from routstr.cashu.tokens import Token, encode_token_v4
from routstr.core.money import unit_to_msat
from routstr.core.swap_kinds import CREDITING_KINDS, Owner, SwapKind, SwapState
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.inflight import IN_FLIGHT_GRACE_S
from routstr.wallet.mints import MintRegistry
from routstr.wallet.offload import crypto

log = logging.getLogger(__name__)

# Settle a pending swap from the mints' records; returns its state afterwards (pending: ask later).
Recover = Callable[[Database, MintRegistry, wallet_store.SwapRow], Awaitable[SwapState]]


class Undo(Protocol):
    """Give back what a swap that did not happen took (``inputs_spent``: the mint says its inputs
    are spent all the same, e.g. refused as already spent)."""

    def __call__(self, db: Database, swap_id: str, *, inputs_spent: bool, error: str) -> Awaitable[None]: ...


@dataclass(frozen=True, slots=True)
class Operation:
    """How the swaps of one kind end: each operation module declares one (``OPERATION``), and
    ``routstr.wallet.operations`` lists them all; recovery dispatches on the swap's kind.

    A swap completes through ``complete_swap`` (signatures in hand; whether its node outputs credit a
    key is the kind's, ``CREDITING_KINDS``) or, for a melt, ``complete_melt`` (a paid quote)."""

    kind: SwapKind
    recover: Recover
    undo: Undo | None  # None: never undone (a paid invoice's mint step is finished, or left pending)
    grace_s: float = IN_FLIGHT_GRACE_S  # how long its sender may still be waiting for the mint


@dataclass(frozen=True, slots=True)
class SwapOutcome:
    key_id: int | None
    credited_msat: int  # redeem: what the key received
    user_token: str | None  # refund: the token for the user


def output_record(o: PreparedOutput, owner: Owner) -> dict[str, Any]:
    """What is written to disk before a swap is sent: enough to re-derive the proofs later."""
    return {"amount": o.amount, "id": o.keyset_id, "secret": o.secret, "r": o.r, "B_": o.B_, "owner": owner}


def prepared_from_record(rec: dict[str, Any]) -> PreparedOutput:
    return PreparedOutput(
        amount=rec["amount"], keyset_id=rec["id"], secret=rec["secret"], r=rec["r"], B_=rec["B_"]
    )


async def complete_swap(
    db: Database,
    mints: MintRegistry,
    swap_id: str,
    sigs: list[BlindedSignature],
    *,
    handing_out: bool = False,
) -> SwapOutcome:
    """Store the swap's result once. ``handing_out``: the caller returns the user's token right now
    (a recovered refund stays uncollected until the user asks for it again)."""
    async with db.read() as conn:
        swap = await wallet_store.swap_by_id(conn, swap_id)
    if swap is None:
        raise LookupError(f"swap {swap_id} not found")
    if swap.state != SwapState.PENDING:
        return _outcome(swap)
    keyset_ids = {rec["id"] for rec in swap.outputs}
    keysets = {kid: await mints.keyset(swap.mint_url, kid) for kid in keyset_ids}
    prepared = [prepared_from_record(r) for r in swap.outputs]
    proofs = await crypto(len(prepared), _unblind, prepared, sigs, keysets)
    by_secret = {p.secret: p for p in proofs}
    node_proofs = [by_secret[r["secret"]] for r in swap.outputs if r.get("owner") == Owner.NODE]
    user_proofs = [by_secret[r["secret"]] for r in swap.outputs if r.get("owner") == Owner.USER]

    user_token = None
    if user_proofs:
        user_token = encode_token_v4(Token(mint=swap.mint_url, unit=swap.unit, proofs=user_proofs))
    credited = unit_to_msat(sum(p.amount for p in node_proofs), swap.unit)
    async with db.write() as conn:
        done_ok = await wallet_store.finish_swap(
            conn, swap_id, SwapState.DONE, result_token=user_token, collected=handing_out
        )
        if not done_ok:
            done = await wallet_store.swap_by_id(conn, swap_id)
            assert done is not None
            return _outcome(done)
        await wallet_store.add_proofs(
            conn, swap.mint_url, swap.unit, swap_id, [{**p.to_input_dict(), "Y": p.Y} for p in node_proofs]
        )
        if swap.kind in CREDITING_KINDS:
            assert swap.key_id is not None
            await accounts.credit(conn, swap.key_id, credited, ref=swap_id)
        else:
            await wallet_store.settle_inputs(conn, swap_id, spent=True)
    return SwapOutcome(swap.key_id, credited if swap.kind in CREDITING_KINDS else 0, user_token)


def _unblind(
    prepared: list[PreparedOutput], sigs: list[BlindedSignature], keysets: dict[str, Keyset]
) -> list[Proof]:
    """The swap's proofs (DLEQ proofs checked, ``Y`` computed): pure curve work, run off the loop
    for a large swap."""
    proofs: list[Proof] = []
    for kid, ks in keysets.items():
        idx = [i for i, p in enumerate(prepared) if p.keyset_id == kid]
        proofs.extend(unblind_signatures([prepared[i] for i in idx], [sigs[i] for i in idx], ks))
    for p in proofs:
        _ = p.Y  # cached on the proof: hash_to_curve, needed when it is stored
    return proofs


async def swap_outcome(db: Database, swap_id: str) -> SwapOutcome:
    """What a swap came to, as stored (e.g. once recovery completed it)."""
    async with db.read() as conn:
        swap = await wallet_store.swap_by_id(conn, swap_id)
    if swap is None:
        raise LookupError(f"swap {swap_id} not found")
    return _outcome(swap)


def _outcome(swap: wallet_store.SwapRow) -> SwapOutcome:
    credited = 0
    if swap.kind in CREDITING_KINDS and swap.state == SwapState.DONE:
        node_units = sum(o["amount"] for o in swap.outputs if o.get("owner") == Owner.NODE)
        credited = unit_to_msat(node_units, swap.unit)
    return SwapOutcome(swap.key_id, credited, swap.result_token)


async def recover_from_mint(
    db: Database, mints: MintRegistry, swap: wallet_store.SwapRow, undo: Undo
) -> SwapState:
    """A token swap (redeem, refund, withdraw) from the mint's records: NUT-09 restore returns the
    signatures of outputs it already signed (the swap happened: complete it); else NUT-07 says whether
    the inputs are still unspent (it never happened: ``undo`` it) or pending (ask again later)."""
    if not mints.is_trusted(swap.mint_url):
        log.error("pending swap %s is for a mint no longer configured: %s", swap.id, swap.mint_url)
        return SwapState.PENDING
    client = mints.client(swap.mint_url)
    prepared = [prepared_from_record(r) for r in swap.outputs]
    try:
        restored = await client.restore([p.to_blinded_message() for p in prepared])
        signed = {bm.B_: sig for bm, sig in restored}
        if prepared and all(p.B_ in signed for p in prepared):
            await complete_swap(db, mints, swap.id, [signed[p.B_] for p in prepared])
            return SwapState.DONE
        inputs = [Proof.from_dict(d) for d in swap.inputs]
        states = await client.check_state([p.Y for p in inputs])
    except CashuError as e:
        log.warning("swap %s: mint %s could not settle it yet: %s", swap.id, swap.mint_url, e)
        return SwapState.PENDING
    values = set(states.values())
    if "PENDING" in values or signed:
        return SwapState.PENDING  # in flight at the mint, or partly signed: ask again later
    await undo(db, swap.id, inputs_spent=values == {"SPENT"}, error="swap did not happen")
    return SwapState.FAILED


async def revert_refund(db: Database, swap_id: str, *, inputs_spent: bool, error: str) -> None:
    """A swap paid for by a key's debit (a refund, a melt) that did not happen: give the debit back."""
    async with db.write() as conn:
        swap = await wallet_store.swap_by_id(conn, swap_id)
        if swap is None or not await wallet_store.finish_swap(conn, swap_id, SwapState.FAILED, error=error):
            return
        await wallet_store.settle_inputs(conn, swap_id, spent=inputs_spent)
        assert swap.key_id is not None
        debit = (await accounts.refund_amount(conn, swap.key_id, swap_id)) or 0
        if debit:
            await accounts.credit(conn, swap.key_id, debit, ref=swap_id)
