"""Finishing a recorded swap once the mint's signatures are in hand (live or restored).

Shared by redeem, refund and crash recovery so that a swap ends the same way whichever path
reaches it, and only once: the pending→done transition is the guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routstr.cashu.nut00 import BlindedSignature, Proof
from routstr.cashu.nut01 import Keyset
from routstr.cashu.outputs import PreparedOutput, unblind_signatures
from routstr.cashu.tokens import Token, encode_token_v4
from routstr.core.money import unit_to_msat
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.mints import MintRegistry
from routstr.wallet.offload import crypto

# swaps whose outputs credit a key: a user's token taken in (redeemed, or converted from a foreign
# mint), or the eCash of a paid Lightning invoice
CREDITING = ("redeem", "convert", "mint")


@dataclass(frozen=True, slots=True)
class SwapOutcome:
    key_id: int | None
    credited_msat: int  # redeem: what the key received
    user_token: str | None  # refund: the token for the user


def output_record(o: PreparedOutput, owner: str) -> dict[str, Any]:
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
    if swap.state != wallet_store.PENDING:
        return _outcome(swap)
    keyset_ids = {rec["id"] for rec in swap.outputs}
    keysets = {kid: await mints.keyset(swap.mint_url, kid) for kid in keyset_ids}
    prepared = [prepared_from_record(r) for r in swap.outputs]
    proofs = await crypto(len(prepared), _unblind, prepared, sigs, keysets)
    by_secret = {p.secret: p for p in proofs}
    node_proofs = [by_secret[r["secret"]] for r in swap.outputs if r.get("owner") == "node"]
    user_proofs = [by_secret[r["secret"]] for r in swap.outputs if r.get("owner") == "user"]

    user_token = None
    if user_proofs:
        user_token = encode_token_v4(Token(mint=swap.mint_url, unit=swap.unit, proofs=user_proofs))
    credited = unit_to_msat(sum(p.amount for p in node_proofs), swap.unit)
    async with db.write() as conn:
        done_ok = await wallet_store.finish_swap(
            conn, swap_id, wallet_store.DONE, result_token=user_token, collected=handing_out
        )
        if not done_ok:
            done = await wallet_store.swap_by_id(conn, swap_id)
            assert done is not None
            return _outcome(done)
        await wallet_store.add_proofs(
            conn, swap.mint_url, swap.unit, swap_id, [{**p.to_input_dict(), "Y": p.Y} for p in node_proofs]
        )
        if swap.kind in CREDITING:
            assert swap.key_id is not None
            await accounts.credit(conn, swap.key_id, credited, ref=swap_id)
        else:
            await wallet_store.settle_inputs(conn, swap_id, spent=True)
    return SwapOutcome(swap.key_id, credited if swap.kind in CREDITING else 0, user_token)


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


def _outcome(swap: wallet_store.SwapRow) -> SwapOutcome:
    credited = 0
    if swap.kind in CREDITING and swap.state == wallet_store.DONE:
        credited = unit_to_msat(sum(o["amount"] for o in swap.outputs if o.get("owner") == "node"), swap.unit)
    return SwapOutcome(swap.key_id, credited, swap.result_token)
