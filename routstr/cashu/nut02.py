"""NUT-02: keyset ids, the keyset list (GET /v1/keysets), input fees and amount splitting."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .nut00 import Proof
from .nut01 import Keyset, parse_fee_ppk, parse_final_expiry


@dataclass(frozen=True, slots=True)
class KeysetInfo:
    """One entry of GET /v1/keysets: everything about a keyset except its keys."""

    id: str
    unit: str
    active: bool
    input_fee_ppk: int = 0
    final_expiry: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "unit": self.unit,
            "active": self.active,
            "input_fee_ppk": self.input_fee_ppk,
            "final_expiry": self.final_expiry,
        }

    @classmethod
    def from_dict(cls, d: Any) -> KeysetInfo:
        if not isinstance(d, dict):
            raise ValueError("keyset info must be an object")
        keyset_id, unit, active = d.get("id"), d.get("unit", "sat"), d.get("active", True)
        if not isinstance(keyset_id, str) or not keyset_id or not isinstance(unit, str):
            raise ValueError("keyset info needs a string id and unit")
        if not isinstance(active, bool):
            raise ValueError("keyset 'active' must be a boolean")
        return cls(
            id=keyset_id,
            unit=unit,
            active=active,
            input_fee_ppk=parse_fee_ppk(d.get("input_fee_ppk")),
            final_expiry=parse_final_expiry(d.get("final_expiry")),
        )


def parse_keysets_response(body: Any) -> list[KeysetInfo]:
    """Parse a `GetKeysetsResponse` body `{"keysets": [...]}`."""
    if not isinstance(body, dict) or not isinstance(body.get("keysets"), list):
        raise ValueError("keysets response must have a 'keysets' list")
    return [KeysetInfo.from_dict(k) for k in body["keysets"]]


# --------------------------------------------------------------------------------------------- ids


def derive_keyset_id_v1(keys: Mapping[int, str]) -> str:
    """Deprecated 8-byte id: "00" + first 14 hex chars of sha256(concatenated pubkeys by amount)."""
    concat = b"".join(bytes.fromhex(keys[a]) for a in sorted(keys))
    return "00" + hashlib.sha256(concat).hexdigest()[:14]


def derive_keyset_id_v2(
    keys: Mapping[int, str], unit: str, input_fee_ppk: int | None = 0, final_expiry: int | None = None
) -> str:
    """Current 33-byte id: "01" + sha256("amount:pubkey,…|unit:…[|input_fee_ppk:…][|final_expiry:…])."""
    preimage = ",".join(f"{a}:{keys[a].lower()}" for a in sorted(keys)) + f"|unit:{unit.lower()}"
    if input_fee_ppk:
        preimage += f"|input_fee_ppk:{input_fee_ppk}"
    if final_expiry:
        preimage += f"|final_expiry:{final_expiry}"
    return "01" + hashlib.sha256(preimage.encode("utf-8")).hexdigest()


def verify_keyset_id(keyset: Keyset) -> bool:
    """Recompute the id from the keys (NUT-02 SHOULD). Ids of unknown versions (e.g. legacy base64
    ids of old Nutshell mints) cannot be checked and are accepted."""
    if keyset.id.startswith("00") and len(keyset.id) == 16:
        return derive_keyset_id_v1(keyset.keys) == keyset.id.lower()
    if keyset.id.startswith("01") and len(keyset.id) == 66:
        expected = derive_keyset_id_v2(keyset.keys, keyset.unit, keyset.input_fee_ppk, keyset.final_expiry)
        return expected == keyset.id.lower()
    return True


# --------------------------------------------------------------------------------------------- choice


def cheapest_active(keysets: Iterable[KeysetInfo], unit: str) -> KeysetInfo | None:
    """The keyset to make new outputs of ``unit`` for, or None if the mint has no active one.

    NUT-02 only requires an active keyset; among several, the lowest ``input_fee_ppk`` makes the proofs
    cheapest to spend later (cdk's wallet chooses so too), and equal fees are broken by id, so every
    process of a fleet picks the same keyset whatever order the mint lists them in.
    """
    candidates = [k for k in keysets if k.active and k.unit == unit]
    return min(candidates, key=lambda k: (k.input_fee_ppk, k.id), default=None)


# --------------------------------------------------------------------------------------------- fees


def fee_table(keysets: Iterable[KeysetInfo]) -> dict[str, int]:
    """``input_fee_ppk`` by keyset id, inactive keysets included (old proofs are spent too), for `fee_for`."""
    return {k.id: k.input_fee_ppk for k in keysets}


def fee_for(proofs: Iterable[Proof], fee_ppk_by_keyset: Mapping[str, int]) -> int:
    """Input fee of spending `proofs`: per-input ppk summed over inputs, rounded up once (NUT-02).

    Raises ValueError for a proof whose keyset is not in the map: guessing 0 would make the swap fail.
    """
    total_ppk = 0
    for p in proofs:
        try:
            total_ppk += fee_ppk_by_keyset[p.id]
        except KeyError:
            raise ValueError(f"no fee known for keyset {p.id}") from None
    return (total_ppk + 999) // 1000


# --------------------------------------------------------------------------------------------- amounts


def split_amount(amount: int) -> list[int]:
    """Decompose into powers of two, ascending (NUT-03 privacy note): 13 -> [1, 4, 8]."""
    if amount < 0:
        raise ValueError("amount must not be negative")
    return [1 << i for i in range(amount.bit_length()) if amount >> i & 1]
