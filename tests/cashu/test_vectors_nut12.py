"""NUT-12 test vectors (tests/12-tests.md): hash_e, deterministic nonce, DLEQ on signatures and proofs."""

from __future__ import annotations

from dataclasses import replace

import pytest
from coincurve import PrivateKey, PublicKey

from routstr.cashu.nut00 import DLEQProof, Proof, blind, sign_blinded, unblind
from routstr.cashu.nut12 import hash_e, sign_dleq, verify_dleq_proof, verify_dleq_signature


def _pk(h: str) -> PublicKey:
    return PublicKey(bytes.fromhex(h))


ONE = "020000000000000000000000000000000000000000000000000000000000000001"
G = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
B_VEC = "02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2"


def test_hash_e() -> None:
    digest = hash_e(_pk(ONE), _pk(ONE), _pk(ONE), _pk(B_VEC))
    assert digest.hex() == "a4dc034b74338c28c6bc3ea49731f2a24440fc7c4affc08b31a93fc9fbe6401e"


def test_deterministic_nonce() -> None:
    a = PrivateKey.from_hex("00" * 31 + "02")
    A = _pk("02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5")
    assert a.public_key.format() == A.format()
    C_ = _pk("0244eccfc7a348274458bb38044c7f3c389b3c2086c7ec18b5812d2877ab937787")
    assert sign_blinded(a, _pk(B_VEC)).format() == C_.format()
    e, s = sign_dleq(a, _pk(B_VEC), C_)
    assert e.hex() == "2a16ffee280aff3c429045607f9b8e0bf8b35910c44c1b20b9dfaf01b263d7b3"
    assert s.hex() == "9df27731238334718d120d4f74611a7c668233f988e687ac3fb188f0a34a2dab"
    assert verify_dleq_signature(B_VEC, C_, e, s, A)


SIG_E = "9818e061ee51d5c8edc3342369a554998ff7b4381c8652d724cdf46429be73d9"
SIG_S = "9818e061ee51d5c8edc3342369a554998ff7b4381c8652d724cdf46429be73da"


def test_dleq_on_blind_signature() -> None:
    # amount 8, id 00882760bfa2eb41; here C_ == B_ because a == 1 (A == G)
    assert verify_dleq_signature(B_VEC, B_VEC, SIG_E, SIG_S, G)
    assert verify_dleq_signature(_pk(B_VEC), _pk(B_VEC), bytes.fromhex(SIG_E), bytes.fromhex(SIG_S), _pk(G))


@pytest.mark.parametrize(
    ("B_", "C_", "e", "s", "A"),
    [
        (B_VEC, B_VEC, SIG_S, SIG_S, G),  # wrong e
        (B_VEC, B_VEC, SIG_E, SIG_E, G),  # wrong s
        (B_VEC, B_VEC, SIG_E, SIG_S, ONE),  # wrong key
        (ONE, B_VEC, SIG_E, SIG_S, G),  # wrong B_
        (B_VEC, ONE, SIG_E, SIG_S, G),  # wrong C_
        (B_VEC, B_VEC, "zz", SIG_S, G),  # not hex
        (B_VEC, B_VEC, SIG_E, "00" * 32, G),  # zero scalar
        (B_VEC, B_VEC, SIG_E, "ff" * 32, G),  # scalar >= n
        (B_VEC, B_VEC, SIG_E[:-2], SIG_S, G),  # short
        ("02" + "00" * 32, B_VEC, SIG_E, SIG_S, G),  # not a point
    ],
)
def test_dleq_on_blind_signature_rejects_tampering(B_: str, C_: str, e: str, s: str, A: str) -> None:
    assert not verify_dleq_signature(B_, C_, e, s, A)


VEC_PROOF = Proof(
    amount=1,
    id="00882760bfa2eb41",
    secret="daf4dd00a2b68a0858a80450f52c8a7d2ccf87d375e43e216e0c571f089f63e9",
    C="024369d2d22a80ecf78f3937da9d5f30c1b9f74f0c32684d583cca0fa6a61cdcfc",
    dleq=DLEQProof(
        e="b31e58ac6527f34975ffab13e70a48b6d2b0d35abc4b03f0151f09ee1a9763d4",
        s="8fbae004c59e754d71df67e392b6ae4e29293113ddc2ec86592a0431d16306d8",
        r="a6d13fcd7a18442e6076f5e1e7c887ad5de40a019824bdfa9fe740d302e8d861",
    ),
)


def test_dleq_on_proof() -> None:
    assert verify_dleq_proof(VEC_PROOF, G)
    assert verify_dleq_proof(VEC_PROOF, _pk(G))
    assert Proof.from_dict(VEC_PROOF.to_dict()) == VEC_PROOF


def test_dleq_on_proof_rejects_tampering() -> None:
    assert VEC_PROOF.dleq is not None
    assert not verify_dleq_proof(replace(VEC_PROOF, secret="other"), G)
    assert not verify_dleq_proof(replace(VEC_PROOF, C=B_VEC), G)
    assert not verify_dleq_proof(replace(VEC_PROOF, dleq=replace(VEC_PROOF.dleq, r="01" * 32)), G)
    assert not verify_dleq_proof(replace(VEC_PROOF, dleq=replace(VEC_PROOF.dleq, r=None)), G)
    assert not verify_dleq_proof(replace(VEC_PROOF, dleq=None), G)
    assert not verify_dleq_proof(VEC_PROOF, ONE)


def test_dleq_full_cycle_with_random_keys() -> None:
    """Mint signs with a DLEQ; Alice verifies the signature; Carol verifies the resulting proof."""
    a = PrivateKey()
    B_, r = blind("secret-x")
    C_ = sign_blinded(a, B_)
    e, s = sign_dleq(a, B_, C_)
    assert verify_dleq_signature(B_, C_, e, s, a.public_key)
    C = unblind(C_, r, a.public_key)
    proof = Proof(1, "00", "secret-x", C.format().hex(), DLEQProof(e.hex(), s.hex(), r.to_hex()))
    assert verify_dleq_proof(proof, a.public_key)
    assert not verify_dleq_proof(proof, PrivateKey().public_key)
