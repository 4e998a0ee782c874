"""NUT-00: blind Diffie-Hellman key exchange (BDHKE) and the core wire models.

Pure functions and frozen dataclasses only; token (de)serialization lives in `tokens.py`.
`from_dict` constructors raise `ValueError` on malformed input so that the caller can map it to the
right domain error (`TokenError` for tokens, `CashuProtocolError` for mint answers).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from coincurve import PrivateKey, PublicKey

DOMAIN_SEPARATOR = b"Secp256k1_HashToCurve_Cashu_"
# secp256k1 group order
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


# --------------------------------------------------------------------------------------------- points


def hash_to_curve(message: bytes) -> PublicKey:
    """Map `message` to a curve point Y with the NUT-00 domain separator (try-and-increment)."""
    msg_hash = hashlib.sha256(DOMAIN_SEPARATOR + message).digest()
    for counter in range(2**16):
        candidate = b"\x02" + hashlib.sha256(msg_hash + counter.to_bytes(4, "little")).digest()
        try:
            return PublicKey(candidate)
        except ValueError:
            continue
    raise ValueError("no valid point found")  # probability ~2^-65536


def negate(point: PublicKey) -> PublicKey:
    """-P: flip the parity byte of the compressed encoding (coincurve has no negation)."""
    raw = point.format(compressed=True)
    return PublicKey(bytes([raw[0] ^ 0x01]) + raw[1:])


def point_sub(a: PublicKey, b: PublicKey) -> PublicKey:
    """a - b; raises ValueError if the result is the point at infinity."""
    return PublicKey.combine_keys([a, negate(b)])


def parse_point(value: PublicKey | str | bytes) -> PublicKey:
    """Accept a PublicKey, its compressed hex or raw bytes; raises ValueError if not a valid point."""
    if isinstance(value, PublicKey):
        return value
    raw = bytes.fromhex(value) if isinstance(value, str) else value
    if len(raw) != 33 or raw[0] not in (2, 3):
        raise ValueError("expected a 33-byte compressed secp256k1 point")
    return PublicKey(raw)


def scalar_bytes(value: int) -> bytes:
    """32-byte big-endian encoding of a scalar already reduced modulo the curve order."""
    return value.to_bytes(32, "big")


# --------------------------------------------------------------------------------------------- BDHKE


def blind_message(message: bytes, r: PrivateKey | None = None) -> tuple[PublicKey, PrivateKey]:
    """B_ = hash_to_curve(message) + r*G. A fresh random r is drawn when none is given."""
    r = r if r is not None else PrivateKey()
    B_ = PublicKey.combine_keys([hash_to_curve(message), r.public_key])
    return B_, r


def blind(secret: str, r: PrivateKey | None = None) -> tuple[PublicKey, PrivateKey]:
    """Blind a proof secret (its UTF-8 bytes are what the mint will hash to the curve)."""
    return blind_message(secret.encode("utf-8"), r)


def sign_blinded(k: PrivateKey, B_: PublicKey) -> PublicKey:
    """Mint side: C_ = k*B_. Only used by tests and fake mints."""
    return B_.multiply(k.secret)


def unblind(C_: PublicKey, r: PrivateKey, K: PublicKey) -> PublicKey:
    """C = C_ - r*K: the unblinded signature that becomes the proof's `C`."""
    return point_sub(C_, K.multiply(r.secret))


def verify(a: PrivateKey, C: PublicKey, secret: str) -> bool:
    """Mint side check k*hash_to_curve(secret) == C (tests only: needs the mint's private key)."""
    Y = hash_to_curve(secret.encode("utf-8"))
    return Y.multiply(a.secret).format() == C.format()


# --------------------------------------------------------------------------------------------- models


def _req(d: dict[str, Any], key: str, typ: type) -> Any:
    """Fetch a required field of an exact JSON type (bool is not an int here)."""
    if key not in d:
        raise ValueError(f"missing field {key!r}")
    value = d[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ValueError(f"field {key!r} must be {typ.__name__}")
    return value


def _hex(value: Any, name: str, nbytes: int | None = None) -> str:
    """Validate a hex string field (optionally of a fixed byte length); returns it lower-cased."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"{name} is not hex") from None
    if nbytes is not None and len(raw) != nbytes:
        raise ValueError(f"{name} must be {nbytes} bytes")
    return value.lower()


def _amount(d: dict[str, Any]) -> int:
    amount: int = _req(d, "amount", int)
    if amount < 0:
        raise ValueError("amount must not be negative")
    return amount


@dataclass(frozen=True, slots=True)
class DLEQProof:
    """NUT-12 proof (e, s) of a blind signature; `r` (the blinding factor) is set when held by a proof."""

    e: str
    s: str
    r: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"e": self.e, "s": self.s}
        if self.r is not None:
            out["r"] = self.r
        return out

    @classmethod
    def from_dict(cls, d: Any) -> DLEQProof:
        if not isinstance(d, dict):
            raise ValueError("dleq must be an object")
        r = d.get("r")
        return cls(
            e=_hex(d.get("e"), "dleq.e", 32),
            s=_hex(d.get("s"), "dleq.s", 32),
            r=_hex(r, "dleq.r", 32) if r is not None else None,
        )


@dataclass(frozen=True)
class Proof:
    """An unblinded token (an *input*). Not slotted so that `Y` can be cached on the instance."""

    amount: int
    id: str
    secret: str
    C: str
    dleq: DLEQProof | None = None
    witness: str | None = None

    @cached_property
    def Y(self) -> str:
        """hash_to_curve(secret) as hex: the key the mint uses for spent state (NUT-07)."""
        return hash_to_curve(self.secret.encode("utf-8")).format().hex()

    def to_dict(self, include_dleq: bool = True) -> dict[str, Any]:
        """JSON form as in tokens (V3) and wallets; `dleq`/`witness` only when present."""
        out: dict[str, Any] = {"amount": self.amount, "id": self.id, "secret": self.secret, "C": self.C}
        if include_dleq and self.dleq is not None:
            out["dleq"] = self.dleq.to_dict()
        if self.witness is not None:
            out["witness"] = self.witness
        return out

    def to_input_dict(self) -> dict[str, Any]:
        """Form sent to the mint as a swap/melt input: never the DLEQ (its `r` would deanonymize us)."""
        out: dict[str, Any] = {"amount": self.amount, "id": self.id, "secret": self.secret, "C": self.C}
        if self.witness is not None:
            out["witness"] = self.witness
        return out

    @classmethod
    def from_dict(cls, d: Any) -> Proof:
        if not isinstance(d, dict):
            raise ValueError("proof must be an object")
        dleq = d.get("dleq")
        witness = d.get("witness")
        if witness is not None and not isinstance(witness, str):
            raise ValueError("witness must be a string")
        return cls(
            amount=_amount(d),
            id=_req(d, "id", str),
            secret=_req(d, "secret", str),
            C=_hex(_req(d, "C", str), "C", 33),
            dleq=DLEQProof.from_dict(dleq) if dleq is not None else None,
            witness=witness,
        )


@dataclass(frozen=True, slots=True)
class BlindedMessage:
    """An *output*: a blinded secret B_ the mint is asked to sign with keyset `id` for `amount`."""

    amount: int
    id: str
    B_: str

    def to_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "id": self.id, "B_": self.B_}

    @classmethod
    def from_dict(cls, d: Any) -> BlindedMessage:
        if not isinstance(d, dict):
            raise ValueError("blinded message must be an object")
        return cls(amount=_amount(d), id=_req(d, "id", str), B_=_hex(_req(d, "B_", str), "B_", 33))


@dataclass(frozen=True, slots=True)
class BlindedSignature:
    """A *promise*: the mint's blind signature C_ = k*B_, optionally with a DLEQ proof (e, s)."""

    amount: int
    id: str
    C_: str
    dleq: DLEQProof | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"amount": self.amount, "id": self.id, "C_": self.C_}
        if self.dleq is not None:
            out["dleq"] = self.dleq.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Any) -> BlindedSignature:
        if not isinstance(d, dict):
            raise ValueError("blind signature must be an object")
        dleq = d.get("dleq")
        return cls(
            amount=_amount(d),
            id=_req(d, "id", str),
            C_=_hex(_req(d, "C_", str), "C_", 33),
            dleq=DLEQProof.from_dict(dleq) if dleq is not None else None,
        )


def sum_amounts(items: list[Proof] | list[BlindedMessage] | list[BlindedSignature]) -> int:
    """Total amount of proofs / outputs / signatures."""
    return sum(i.amount for i in items)
