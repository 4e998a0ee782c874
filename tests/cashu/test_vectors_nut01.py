"""NUT-01 test vectors (tests/01-tests.md): keysets wallets must reject or accept."""

from __future__ import annotations

from typing import Any

import pytest

from routstr.cashu.nut01 import Keyset, parse_keys, parse_keys_response
from tests.cashu.nut_vectors_data import KEYS_4, KEYS_64, KEYS_INVALID_SHORT_KEY, KEYS_INVALID_UNCOMPRESSED


@pytest.mark.parametrize("keys", [KEYS_INVALID_SHORT_KEY, KEYS_INVALID_UNCOMPRESSED])
def test_invalid_keysets_rejected(keys: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        parse_keys(keys)
    with pytest.raises(ValueError):
        Keyset.from_dict({"id": "00456a94ab4e1c46", "unit": "sat", "active": True, "keys": keys})


@pytest.mark.parametrize("keys", [KEYS_4, KEYS_64])
def test_valid_keysets_accepted(keys: dict[int, str]) -> None:
    as_json = {str(a): k for a, k in keys.items()}  # JSON object keys are strings
    parsed = parse_keys(as_json)
    assert parsed == keys
    assert max(parsed) == max(keys)  # 2^63 in the big one: no 64-bit signed overflow in Python
    keyset = Keyset.from_dict({"id": "x", "unit": "sat", "active": True, "keys": as_json})
    assert keyset.public_key(max(keys)).format().hex() == keys[max(keys)]


def test_big_keyset_has_2_pow_63() -> None:
    assert 9223372036854775808 in KEYS_64


def test_keys_response_parsing() -> None:
    body: dict[str, Any] = {
        "keysets": [
            {
                "id": "009a1f293253e41e",
                "unit": "sat",
                "active": True,
                "input_fee_ppk": None,
                "final_expiry": None,
                "keys": {str(a): k for a, k in KEYS_4.items()},
            }
        ]
    }
    [ks] = parse_keys_response(body)
    assert (ks.id, ks.unit, ks.active, ks.input_fee_ppk, ks.final_expiry) == (
        "009a1f293253e41e",
        "sat",
        True,
        0,
        None,
    )
    assert ks.amounts == [1, 2, 4, 8]
    assert Keyset.from_dict(ks.to_dict()) == ks


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {},
        {"keysets": None},
        {"keysets": [{"id": "x", "unit": "sat", "keys": {}}]},
        {"keysets": [{"id": "x", "unit": "sat", "keys": {"one": KEYS_4[1]}}]},
        {"keysets": [{"id": "x", "unit": "sat", "keys": {"0": KEYS_4[1]}}]},
        {"keysets": [{"id": "x", "unit": "sat", "keys": {"1": 5}}]},
        {"keysets": [{"id": 5, "unit": "sat", "keys": {"1": KEYS_4[1]}}]},
        {"keysets": [{"id": "x", "unit": "sat", "active": "yes", "keys": {"1": KEYS_4[1]}}]},
        {"keysets": [{"id": "x", "unit": "sat", "input_fee_ppk": -1, "keys": {"1": KEYS_4[1]}}]},
        {"keysets": [{"id": "x", "unit": "sat", "keys": {"1": "02" + "00" * 32}}]},  # not on the curve
    ],
)
def test_bad_keys_responses(bad: Any) -> None:
    with pytest.raises(ValueError):
        parse_keys_response(bad)
