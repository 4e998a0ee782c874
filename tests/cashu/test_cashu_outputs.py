"""outputs.py against an in-process fake mint: prepare -> sign (+DLEQ) -> unblind -> verify."""

from __future__ import annotations

from dataclasses import replace

import pytest
from coincurve import PrivateKey, PublicKey

from routstr.cashu.errors import CashuProtocolError
from routstr.cashu.nut00 import BlindedMessage, BlindedSignature, DLEQProof, sign_blinded, verify
from routstr.cashu.nut01 import Keyset
from routstr.cashu.nut02 import derive_keyset_id_v2, split_amount
from routstr.cashu.nut12 import sign_dleq, verify_dleq_proof
from routstr.cashu.outputs import PreparedOutput, prepare_outputs, unblind_restored, unblind_signatures


class FakeMint:
    """Private keys per amount and a signer, as a mint holds them."""

    def __init__(self) -> None:
        self.privkeys = {1 << i: PrivateKey() for i in range(10)}
        keys = {a: k.public_key.format().hex() for a, k in self.privkeys.items()}
        self.keyset = Keyset(id=derive_keyset_id_v2(keys, "sat"), unit="sat", keys=keys)

    def sign(self, outputs: list[BlindedMessage], with_dleq: bool = True) -> list[BlindedSignature]:
        sigs = []
        for o in outputs:
            k = self.privkeys[o.amount]
            B_ = PublicKey(bytes.fromhex(o.B_))
            C_ = sign_blinded(k, B_)
            dleq = None
            if with_dleq:
                e, s = sign_dleq(k, B_, C_)
                dleq = DLEQProof(e.hex(), s.hex())
            sigs.append(BlindedSignature(o.amount, o.id, C_.format().hex(), dleq))
        return sigs


@pytest.fixture(scope="module")
def mint() -> FakeMint:
    return FakeMint()


def test_prepare_outputs_shape(mint: FakeMint) -> None:
    prepared = prepare_outputs([1, 4, 8], mint.keyset.id)
    assert [p.amount for p in prepared] == [1, 4, 8]
    assert len({p.secret for p in prepared}) == 3
    assert all(len(p.secret) == 64 and bytes.fromhex(p.secret) for p in prepared)
    msg = prepared[0].to_blinded_message()
    assert msg == BlindedMessage(1, mint.keyset.id, prepared[0].B_)
    assert PreparedOutput.from_dict(prepared[0].to_dict()) == prepared[0]
    with pytest.raises(ValueError):
        prepare_outputs([0], mint.keyset.id)


def test_unblind_valid_proofs_with_dleq(mint: FakeMint) -> None:
    prepared = prepare_outputs(split_amount(1000), mint.keyset.id)
    sigs = mint.sign([p.to_blinded_message() for p in prepared])
    proofs = unblind_signatures(prepared, sigs, mint.keyset)
    assert sum(p.amount for p in proofs) == 1000
    for p, out in zip(proofs, prepared, strict=True):
        assert p.secret == out.secret and p.id == mint.keyset.id
        assert verify(mint.privkeys[p.amount], PublicKey(bytes.fromhex(p.C)), p.secret)
        assert p.dleq is not None and p.dleq.r == out.r
        assert verify_dleq_proof(p, mint.keyset.public_key(p.amount))


def test_unblind_without_dleq(mint: FakeMint) -> None:
    prepared = prepare_outputs([2], mint.keyset.id)
    sigs = mint.sign([p.to_blinded_message() for p in prepared], with_dleq=False)
    [proof] = unblind_signatures(prepared, sigs, mint.keyset)
    assert proof.dleq is None
    with pytest.raises(CashuProtocolError, match="no DLEQ"):
        unblind_signatures(prepared, sigs, mint.keyset, require_dleq=True)


def test_bad_dleq_raises(mint: FakeMint) -> None:
    prepared = prepare_outputs([2, 4], mint.keyset.id)
    sigs = mint.sign([p.to_blinded_message() for p in prepared])
    assert sigs[1].dleq is not None
    forged = [sigs[0], replace(sigs[1], dleq=DLEQProof(sigs[1].dleq.s, sigs[1].dleq.e))]
    with pytest.raises(CashuProtocolError, match="DLEQ"):
        unblind_signatures(prepared, forged, mint.keyset)
    assert len(unblind_signatures(prepared, forged, mint.keyset, verify_dleq=False)) == 2


def test_signature_with_another_key_fails_dleq(mint: FakeMint) -> None:
    """A mint tagging users by signing with a secret key: caught by the DLEQ check."""
    prepared = prepare_outputs([8], mint.keyset.id)
    rogue = FakeMint()
    rogue.keyset = mint.keyset
    sigs = rogue.sign([p.to_blinded_message() for p in prepared])
    with pytest.raises(CashuProtocolError, match="DLEQ"):
        unblind_signatures(prepared, sigs, mint.keyset)


def test_mismatches_raise(mint: FakeMint) -> None:
    prepared = prepare_outputs([1, 2], mint.keyset.id)
    sigs = mint.sign([p.to_blinded_message() for p in prepared])
    with pytest.raises(CashuProtocolError, match="2 outputs"):
        unblind_signatures(prepared, sigs[:1], mint.keyset)
    with pytest.raises(CashuProtocolError, match="does not match"):
        unblind_signatures(prepared, list(reversed(sigs)), mint.keyset)
    with pytest.raises(CashuProtocolError, match="does not match"):
        unblind_signatures(prepared, [sigs[0], replace(sigs[1], id="00" * 8)], mint.keyset)
    other = Keyset(id="other", unit="sat", keys=mint.keyset.keys)
    with pytest.raises(CashuProtocolError, match="expected other"):
        unblind_signatures(prepared, sigs, other)
    small = Keyset(id=mint.keyset.id, unit="sat", keys={1: mint.keyset.keys[1]})
    with pytest.raises(CashuProtocolError, match="no key for amount 2"):
        unblind_signatures(prepared, sigs, small)


def test_unblind_restored_matches_by_b(mint: FakeMint) -> None:
    prepared = prepare_outputs([1, 2, 4], mint.keyset.id)
    signed = prepared[:2]
    sigs = mint.sign([p.to_blinded_message() for p in signed])
    pairs = list(zip([p.to_blinded_message() for p in signed], sigs, strict=True))
    proofs = unblind_restored(list(reversed(prepared)), pairs, mint.keyset)
    assert [p.secret for p in proofs] == [p.secret for p in signed]
    stranger = prepare_outputs([1], mint.keyset.id)
    with pytest.raises(CashuProtocolError, match="not asked for"):
        unblind_restored(stranger, pairs, mint.keyset)
