"""NUT-02 test vectors (tests/02-tests.md): keyset ids v1 and v2; plus fees and amount splitting."""

from __future__ import annotations

import pytest

from routstr.cashu.nut00 import Proof
from routstr.cashu.nut01 import Keyset
from routstr.cashu.nut02 import (
    KeysetInfo,
    derive_keyset_id_v1,
    derive_keyset_id_v2,
    fee_for,
    parse_keysets_response,
    split_amount,
    verify_keyset_id,
)
from tests.cashu.nut_vectors_data import KEYS_4, KEYS_64


def test_v1_ids() -> None:
    assert derive_keyset_id_v1(KEYS_4) == "00456a94ab4e1c46"
    assert derive_keyset_id_v1(KEYS_64) == "000f01df73ea149a"


@pytest.mark.parametrize(
    ("keys", "fee", "expiry", "expected"),
    [
        (KEYS_4, 100, 2059210353, "015ba18a8adcd02e715a58358eb618da4a4b3791151a4bee5e968bb88406ccf76a"),
        (KEYS_64, 0, 2059210353, "01ab6aa4ff30390da34986d84be5274b48ad7a74265d791095bfc39f4098d9764f"),
        (KEYS_64, 0, None, "012fbb01a4e200c76df911eeba3b8fe1831202914b24664f4bccbd25852a6708f8"),
    ],
)
def test_v2_ids(keys: dict[int, str], fee: int, expiry: int | None, expected: str) -> None:
    assert derive_keyset_id_v2(keys, "sat", fee, expiry) == expected
    keyset = Keyset(id=expected, unit="sat", keys=keys, input_fee_ppk=fee, final_expiry=expiry)
    assert verify_keyset_id(keyset)
    # the id commits to the fee and the expiry: changing either breaks it
    assert not verify_keyset_id(Keyset(id=expected, unit="sat", keys=keys, input_fee_ppk=fee + 1))
    assert not verify_keyset_id(
        Keyset(id=expected, unit="usd", keys=keys, input_fee_ppk=fee, final_expiry=expiry)
    )


def test_v2_fee_none_equals_zero() -> None:
    assert derive_keyset_id_v2(KEYS_64, "sat", None, None) == derive_keyset_id_v2(KEYS_64, "sat", 0, None)


def test_verify_v1_id_and_legacy_ids() -> None:
    assert verify_keyset_id(Keyset(id="00456a94ab4e1c46", unit="sat", keys=KEYS_4))
    assert not verify_keyset_id(Keyset(id="00456a94ab4e1c47", unit="sat", keys=KEYS_4))
    assert verify_keyset_id(Keyset(id="I2yN+iRYfkzT", unit="sat", keys=KEYS_4))  # legacy base64: unverifiable


def _proofs(keyset_id: str, n: int) -> list[Proof]:
    return [Proof(amount=1, id=keyset_id, secret=str(i), C="02" + "00" * 32) for i in range(n)]


def test_fees_spec_example() -> None:
    fees = {"a": 100}
    assert fee_for([], fees) == 0
    assert fee_for(_proofs("a", 3), fees) == 1  # ceil(0.3)
    assert fee_for(_proofs("a", 10), fees) == 1
    assert fee_for(_proofs("a", 11), fees) == 2


def test_fees_summed_across_keysets_before_rounding() -> None:
    fees = {"a": 100, "b": 450, "c": 0}
    assert fee_for(_proofs("a", 1) + _proofs("b", 2), fees) == 1  # 1000 ppk -> 1, not 1 + 1
    assert fee_for(_proofs("a", 2) + _proofs("b", 2), fees) == 2  # 1100 ppk
    assert fee_for(_proofs("c", 50), fees) == 0
    assert fee_for(_proofs("x", 1), {"x": 1000}) == 1
    with pytest.raises(ValueError):
        fee_for(_proofs("unknown", 1), fees)


@pytest.mark.parametrize(
    ("amount", "parts"),
    [
        (0, []),
        (1, [1]),
        (2, [2]),
        (3, [1, 2]),
        (13, [1, 4, 8]),
        (64, [64]),
        (100, [4, 32, 64]),
        (2**63, [2**63]),
    ],
)
def test_split_amount(amount: int, parts: list[int]) -> None:
    assert split_amount(amount) == parts
    assert sum(parts) == amount


def test_split_amount_negative() -> None:
    with pytest.raises(ValueError):
        split_amount(-1)


def test_keysets_response() -> None:
    body = {
        "keysets": [
            {
                "id": "015ba18a8adcd02e715a58358eb618da4a4b3791151a4bee5e968bb88406ccf76a",
                "unit": "sat",
                "active": True,
                "input_fee_ppk": 100,
                "final_expiry": 2059210353,
            },
            {
                "id": "012fbb01a4e200c76df911eeba3b8fe1831202914b24664f4bccbd25852a6708f8",
                "unit": "sat",
                "active": False,
                "input_fee_ppk": 0,
                "final_expiry": None,
            },
            {"id": "00456a94ab4e1c46", "unit": "usd", "active": False},  # fee omitted -> 0
        ]
    }
    a, b, c = parse_keysets_response(body)
    assert (a.active, a.input_fee_ppk, a.final_expiry) == (True, 100, 2059210353)
    assert (b.active, b.input_fee_ppk, b.final_expiry) == (False, 0, None)
    assert (c.unit, c.input_fee_ppk) == ("usd", 0)
    assert KeysetInfo.from_dict(a.to_dict()) == a
    with pytest.raises(ValueError):
        parse_keysets_response({"keysets": [{"id": "x", "unit": "sat", "input_fee_ppk": "100"}]})
