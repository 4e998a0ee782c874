"""NUT-01: a keyset's public keys (GET /v1/keys, GET /v1/keys/{id}).

Keys are validated once when parsed (compressed, on the curve) and kept as parsed points, so unblinding
on the hot path never re-parses hex.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coincurve import PublicKey

from .nut00 import parse_point


@dataclass(frozen=True)
class Keyset:
    """Public keys of one keyset: amount -> compressed public key hex."""

    id: str
    unit: str
    keys: dict[int, str]
    input_fee_ppk: int = 0
    active: bool = True
    final_expiry: int | None = None
    _points: dict[int, PublicKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # parse (and so validate) every key once; unblinding then uses the parsed points
        points = {amount: parse_point(hexkey) for amount, hexkey in self.keys.items()}
        object.__setattr__(self, "_points", points)

    @property
    def amounts(self) -> list[int]:
        """Supported denominations, ascending."""
        return sorted(self.keys)

    def public_key(self, amount: int) -> PublicKey:
        """K for `amount`; KeyError if the keyset has no key for that amount."""
        return self._points[amount]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "unit": self.unit,
            "active": self.active,
            "input_fee_ppk": self.input_fee_ppk,
            "final_expiry": self.final_expiry,
            "keys": {str(a): k for a, k in sorted(self.keys.items())},
        }

    @classmethod
    def from_dict(cls, d: Any) -> Keyset:
        """Parse one entry of a keys response. ValueError on anything malformed (NUT-01 vectors)."""
        if not isinstance(d, dict):
            raise ValueError("keyset must be an object")
        keyset_id, unit = d.get("id"), d.get("unit", "sat")
        if not isinstance(keyset_id, str) or not keyset_id or not isinstance(unit, str):
            raise ValueError("keyset needs a string id and unit")
        active = d.get("active", True)
        if not isinstance(active, bool):
            raise ValueError("keyset 'active' must be a boolean")
        return cls(
            id=keyset_id,
            unit=unit,
            keys=parse_keys(d.get("keys")),
            input_fee_ppk=parse_fee_ppk(d.get("input_fee_ppk")),
            active=active,
            final_expiry=parse_final_expiry(d.get("final_expiry")),
        )


def parse_keys(raw: Any) -> dict[int, str]:
    """Validate an `{amount: pubkey_hex}` map; keys must be compressed, valid secp256k1 points."""
    if not isinstance(raw, dict) or not raw:
        raise ValueError("keyset 'keys' must be a non-empty object")
    keys: dict[int, str] = {}
    for amount_raw, pubkey in raw.items():
        try:
            amount = int(amount_raw)
        except (TypeError, ValueError):
            raise ValueError(f"keyset amount {amount_raw!r} is not an integer") from None
        if amount <= 0:
            raise ValueError("keyset amounts must be positive")
        if not isinstance(pubkey, str):
            raise ValueError("keyset public keys must be hex strings")
        try:
            parse_point(pubkey)
        except ValueError:
            raise ValueError(f"invalid public key for amount {amount}") from None
        keys[amount] = pubkey.lower()
    return keys


def parse_fee_ppk(raw: Any) -> int:
    """`input_fee_ppk` may be missing or null: both mean 0 (NUT-02)."""
    if raw is None:
        return 0
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        raise ValueError("input_fee_ppk must be a non-negative integer")
    return raw


def parse_final_expiry(raw: Any) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ValueError("final_expiry must be an integer")
    return raw


def parse_keys_response(body: Any) -> list[Keyset]:
    """Parse a `GetKeysResponse` body `{"keysets": [...]}`."""
    if not isinstance(body, dict) or not isinstance(body.get("keysets"), list):
        raise ValueError("keys response must have a 'keysets' list")
    return [Keyset.from_dict(k) for k in body["keysets"]]
