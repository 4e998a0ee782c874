"""Wallet-side outputs: make blinded messages for a swap and turn the mint's answer into proofs.

A `PreparedOutput` holds the secret and blinding factor that must survive until the mint answers;
persist them *before* calling the mint if a crash must not lose funds (NUT-09 restore needs them).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey, PublicKey

from .errors import CashuProtocolError
from .nut00 import BlindedMessage, BlindedSignature, DLEQProof, Proof, blind, parse_point, unblind
from .nut01 import Keyset
from .nut12 import verify_dleq_signature


@dataclass(frozen=True, slots=True)
class PreparedOutput:
    """One output before signing: amount, keyset, secret, blinding factor r (hex) and B_ (hex)."""

    amount: int
    keyset_id: str
    secret: str
    r: str
    B_: str

    def to_blinded_message(self) -> BlindedMessage:
        return BlindedMessage(amount=self.amount, id=self.keyset_id, B_=self.B_)

    def to_dict(self) -> dict[str, Any]:
        return {
            "amount": self.amount,
            "keyset_id": self.keyset_id,
            "secret": self.secret,
            "r": self.r,
            "B_": self.B_,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreparedOutput:
        return cls(
            amount=int(d["amount"]),
            keyset_id=str(d["keyset_id"]),
            secret=str(d["secret"]),
            r=str(d["r"]),
            B_=str(d["B_"]),
        )

    @classmethod
    def create(cls, amount: int, keyset_id: str, secret: str, r: PrivateKey | None = None) -> PreparedOutput:
        """Blind a given secret (e.g. a NUT-13 deterministic one); r is random unless given."""
        B_, r_key = blind(secret, r)
        return cls(amount=amount, keyset_id=keyset_id, secret=secret, r=r_key.to_hex(), B_=B_.format().hex())


def prepare_outputs(amounts: list[int], keyset_id: str) -> list[PreparedOutput]:
    """Fresh outputs with random 32-byte hex secrets (the anti-fingerprinting format of NUT-00)."""
    if any(a <= 0 for a in amounts):
        raise ValueError("output amounts must be positive")
    return [PreparedOutput.create(a, keyset_id, secrets.token_hex(32)) for a in amounts]


def unblind_signatures(
    prepared: list[PreparedOutput],
    sigs: list[BlindedSignature],
    keyset: Keyset,
    verify_dleq: bool = True,
    require_dleq: bool = False,
) -> list[Proof]:
    """Pair signatures with outputs in order and unblind them into proofs.

    Raises CashuProtocolError when the mint's answer does not match what was asked (count, amount,
    keyset) or when a DLEQ proof it sent does not verify (NUT-12: wallets MUST check one if given).
    """
    if len(prepared) != len(sigs):
        raise CashuProtocolError(f"mint returned {len(sigs)} signatures for {len(prepared)} outputs")
    proofs: list[Proof] = []
    for out, sig in zip(prepared, sigs, strict=True):
        if sig.amount != out.amount or sig.id != out.keyset_id:
            raise CashuProtocolError(
                f"signature ({sig.amount}, {sig.id}) does not match output ({out.amount}, {out.keyset_id})"
            )
        if sig.id != keyset.id:
            raise CashuProtocolError(f"signature from keyset {sig.id}, expected {keyset.id}")
        try:
            K = keyset.public_key(sig.amount)
        except KeyError:
            raise CashuProtocolError(f"keyset {keyset.id} has no key for amount {sig.amount}") from None
        try:
            C_: PublicKey = parse_point(sig.C_)
            r = PrivateKey.from_hex(out.r)
            C = unblind(C_, r, K)
        except ValueError as e:
            raise CashuProtocolError(f"cannot unblind signature: {e}") from None
        dleq = None
        if sig.dleq is not None:
            if verify_dleq and not verify_dleq_signature(out.B_, C_, sig.dleq.e, sig.dleq.s, K):
                raise CashuProtocolError("DLEQ proof of a blind signature does not verify")
            dleq = DLEQProof(e=sig.dleq.e, s=sig.dleq.s, r=out.r)
        elif require_dleq:
            raise CashuProtocolError("mint sent no DLEQ proof")
        proofs.append(Proof(amount=sig.amount, id=sig.id, secret=out.secret, C=C.format().hex(), dleq=dleq))
    return proofs


def unblind_restored(
    prepared: list[PreparedOutput],
    restored: list[tuple[BlindedMessage, BlindedSignature]],
    keyset: Keyset,
    verify_dleq: bool = True,
) -> list[Proof]:
    """Proofs for the outputs a NUT-09 restore found signed (matched by B_; unsigned ones are skipped).

    This is the recovery path after a swap whose answer was lost (`MintUnavailable.maybe_processed`).
    """
    by_b = {p.B_: p for p in prepared}
    matched: list[PreparedOutput] = []
    sigs: list[BlindedSignature] = []
    for msg, sig in restored:
        out = by_b.get(msg.B_.lower())
        if out is None:
            raise CashuProtocolError("restore returned an output that was not asked for")
        matched.append(out)
        sigs.append(sig)
    return unblind_signatures(matched, sigs, keyset, verify_dleq=verify_dleq)
