"""NUT-12: DLEQ proofs, i.e. offline checks that the mint signed with the key it published.

Without them a mint could sign with a per-user key and later refuse (or trace) those proofs. Verification
functions return False on any malformed input instead of raising: a bad proof is just "not valid".
"""

from __future__ import annotations

import hashlib
import hmac

from coincurve import PrivateKey, PublicKey

from .nut00 import CURVE_ORDER, Proof, hash_to_curve, parse_point, point_sub, scalar_bytes

NONCE_TAG = b"Cashu_DLEQ_R_v1"


def hash_e(*points: PublicKey) -> bytes:
    """sha256 over the concatenated *hex* of the uncompressed points (as the spec defines it)."""
    joined = "".join(p.format(compressed=False).hex() for p in points)
    return hashlib.sha256(joined.encode("utf-8")).digest()


def _scalar(value: bytes | str) -> int:
    raw = bytes.fromhex(value) if isinstance(value, str) else value
    if len(raw) != 32:
        raise ValueError("scalar must be 32 bytes")
    return int.from_bytes(raw, "big")


def _mul_g(k: int) -> PublicKey:
    return PrivateKey(scalar_bytes(k % CURVE_ORDER)).public_key


def _mul(point: PublicKey, k: int) -> PublicKey:
    return point.multiply(scalar_bytes(k % CURVE_ORDER))


def verify_dleq_signature(
    B_: PublicKey | str, C_: PublicKey | str, e: bytes | str, s: bytes | str, A: PublicKey | str
) -> bool:
    """Alice's check of a BlindSignature: R1 = s*G - e*A, R2 = s*B_ - e*C_, e == hash(R1, R2, A, C_)."""
    try:
        B_p, C_p, A_p = parse_point(B_), parse_point(C_), parse_point(A)
        e_raw = bytes.fromhex(e) if isinstance(e, str) else e
        e_int, s_int = _scalar(e_raw), _scalar(s)
        R1 = point_sub(_mul_g(s_int), _mul(A_p, e_int))
        R2 = point_sub(_mul(B_p, s_int), _mul(C_p, e_int))
    except ValueError:  # bad hex, zero/overflowing scalar, point at infinity
        return False
    return hmac.compare_digest(hash_e(R1, R2, A_p, C_p), e_raw)


def verify_dleq_proof(proof: Proof, A: PublicKey | str) -> bool:
    """Carol's check of a received Proof carrying (e, s, r): rebuild B_ = Y + r*G and C_ = C + r*A.

    False if the proof has no DLEQ or no blinding factor `r` (nothing to verify offline).
    """
    if proof.dleq is None or proof.dleq.r is None:
        return False
    try:
        A_p = parse_point(A)
        r = _scalar(proof.dleq.r)
        Y = hash_to_curve(proof.secret.encode("utf-8"))
        C = parse_point(proof.C)
        B_ = PublicKey.combine_keys([Y, _mul_g(r)])
        C_ = PublicKey.combine_keys([C, _mul(A_p, r)])
    except ValueError:
        return False
    return verify_dleq_signature(B_, C_, proof.dleq.e, proof.dleq.s, A_p)


def dleq_nonce(a: PrivateKey, A: PublicKey, B_: PublicKey, C_: PublicKey) -> int:
    """Mint side deterministic nonce: HMAC-SHA256(a, tag || A || B_ || C_ || ctr), rejection sampled."""
    data = NONCE_TAG + A.format(compressed=False) + B_.format(compressed=False) + C_.format(compressed=False)
    for ctr in range(256):
        r = int.from_bytes(hmac.digest(a.secret, data + bytes([ctr]), "sha256"), "big")
        if 0 < r < CURVE_ORDER:
            return r
    raise ValueError("no valid nonce in 256 tries")


def sign_dleq(a: PrivateKey, B_: PublicKey, C_: PublicKey) -> tuple[bytes, bytes]:
    """Mint side: produce (e, s) for C_ = a*B_. Used by tests and fake mints."""
    A = a.public_key
    r = dleq_nonce(a, A, B_, C_)
    R1 = _mul_g(r)
    R2 = _mul(B_, r)
    e = hash_e(R1, R2, A, C_)
    s = (r + int.from_bytes(e, "big") * int.from_bytes(a.secret, "big")) % CURVE_ORDER
    return e, scalar_bytes(s)
