"""NUT-00 test vectors (tests/00-tests.md): hash_to_curve, blinding, signing, V3/V4 tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

import cbor2
import pytest
from coincurve import PrivateKey, PublicKey

from routstr.cashu.errors import TokenError
from routstr.cashu.nut00 import Proof, blind, blind_message, hash_to_curve, sign_blinded, unblind, verify
from routstr.cashu.tokens import (
    Token,
    decode_token,
    decode_token_raw,
    encode_token_raw_v4,
    encode_token_v3,
    encode_token_v4,
)
from tests.cashu.nut_vectors_data import (
    RAW_V4_HEX,
    V3_BAD_PREFIX,
    V3_NO_PREFIX,
    V3_PADDED,
    V3_TOKEN,
    V3_UNPADDED,
    V3_VALID,
    V4_MULTI,
    V4_SINGLE,
)


@pytest.mark.parametrize(
    ("message", "point"),
    [
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "024cce997d3b518f739663b757deaec95bcd9473c30a14ac2fd04023a739d1a725",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000001",
            "022e7158e11c9506f1aa4248bf531298daa7febd6194f003edcd9b93ade6253acf",
        ),
        (  # needs several iterations of the counter loop
            "0000000000000000000000000000000000000000000000000000000000000002",
            "026cdbe15362df59cd1dd3c9c11de8aedac2106eca69236ecd9fbe117af897be4f",
        ),
    ],
)
def test_hash_to_curve(message: str, point: str) -> None:
    assert hash_to_curve(bytes.fromhex(message)).format().hex() == point


@pytest.mark.parametrize(
    ("x", "r", "B_"),
    [
        (
            "d341ee4871f1f889041e63cf0d3823c713eea6aff01e80f1719f08f9e5be98f6",
            "99fce58439fc37412ab3468b73db0569322588f62fb3a49182d67e23d877824a",
            "033b1a9737a40cc3fd9b6af4b723632b76a67a36782596304612a6c2bfb5197e6d",
        ),
        (
            "f1aaf16c2239746f369572c0784d9dd3d032d952c2d992175873fb58fae31a60",
            "f78476ea7cc9ade20f9e05e58a804cf19533f03ea805ece5fee88c8e2874ba50",
            "029bdf2d716ee366eddf599ba252786c1033f47e230248a4612a5670ab931f1763",
        ),
    ],
)
def test_blinded_messages(x: str, r: str, B_: str) -> None:
    blinded, r_out = blind_message(bytes.fromhex(x), PrivateKey.from_hex(r))
    assert blinded.format().hex() == B_
    assert r_out.to_hex() == r


@pytest.mark.parametrize(
    ("k", "B_", "C_"),
    [
        (
            "0000000000000000000000000000000000000000000000000000000000000001",
            "02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2",
            "02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2",
        ),
        (
            "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
            "02a9acc1e48c25eeeb9289b5031cc57da9fe72f3fe2861d264bdc074209b107ba2",
            "0398bc70ce8184d27ba89834d19f5199c84443c31131e48d3c1214db24247d005d",
        ),
    ],
)
def test_blinded_signatures(k: str, B_: str, C_: str) -> None:
    C = sign_blinded(PrivateKey.from_hex(k), PublicKey(bytes.fromhex(B_)))
    assert C.format().hex() == C_


def test_bdhke_round_trip() -> None:
    """blind -> mint signs -> unblind gives k*Y, which the mint accepts."""
    k = PrivateKey()
    B_, r = blind("my secret")
    C = unblind(sign_blinded(k, B_), r, k.public_key)
    assert verify(k, C, "my secret")
    assert not verify(k, C, "another secret")
    assert not verify(PrivateKey(), C, "my secret")


# ----------------------------------------------------------------------------------------- TokenV3

V3_PROOFS = [
    Proof(
        amount=2,
        id="009a1f293253e41e",
        secret="407915bc212be61a77e3e6d2aeb4c727980bda51cd06a6afc29e2861768a7837",
        C="02bc9097997d81afb2cc7346b5e4345a9346bd2a506eb7958598a72f0cf85163ea",
    ),
    Proof(
        amount=8,
        id="009a1f293253e41e",
        secret="fe15109314e61d7756b0f8ee0f23a624acaa3f4e042f61433c728c7057b931be",
        C="029e8e5050b890a7d6c0968db16bc1d5d5fa040ea1de284f6ec69d61299f671059",
    ),
]


def test_v3_decode() -> None:
    token = decode_token(V3_TOKEN)
    assert token == Token(mint="https://8333.space:3338", unit="sat", proofs=V3_PROOFS, memo="Thank you.")
    assert token.amount == 10
    assert token.keyset_ids == ["009a1f293253e41e"]


def test_v3_encode_matches_vector() -> None:
    token = Token(mint="https://8333.space:3338", unit="sat", proofs=V3_PROOFS, memo="Thank you.")
    assert encode_token_v3(token) == V3_TOKEN.rstrip("=")
    assert decode_token(encode_token_v3(token)) == token


@pytest.mark.parametrize("bad", [V3_BAD_PREFIX, V3_NO_PREFIX])
def test_v3_invalid_prefix_rejected(bad: str) -> None:
    with pytest.raises(TokenError):
        decode_token(bad)


def test_v3_valid_vector() -> None:
    assert decode_token(V3_VALID).amount == 10


def test_v3_padded_and_unpadded() -> None:
    padded, unpadded = decode_token(V3_PADDED), decode_token(V3_UNPADDED)
    assert V3_PADDED.endswith("=") and not V3_UNPADDED.endswith("=")
    assert padded == unpadded
    assert padded.memo == "Thank you very much."


# ----------------------------------------------------------------------------------------- TokenV4

V4_SINGLE_TOKEN = Token(
    mint="http://localhost:3338",
    unit="sat",
    memo="Thank you",
    proofs=[
        Proof(
            amount=1,
            id="00ad268c4d1f5826",
            secret="9a6dbb847bd232ba76db0df197216b29d3b8cc14553cd27827fc1cc942fedb4e",
            C="038618543ffb6b8695df4ad4babcde92a34a96bdcd97dcee0d7ccf98d472126792",
        )
    ],
)

V4_MULTI_TOKEN = Token(
    mint="http://localhost:3338",
    unit="sat",
    proofs=[
        Proof(
            amount=1,
            id="00ffd48b8f5ecf80",
            secret="acc12435e7b8484c3cf1850149218af90f716a52bf4a5ed347e48ecc13f77388",
            C="0244538319de485d55bed3b29a642bee5879375ab9e7a620e11e48ba482421f3cf",
        ),
        Proof(
            amount=2,
            id="00ad268c4d1f5826",
            secret="1323d3d4707a58ad2e23ada4e9f1f49f5a5b4ac7b708eb0d61f738f48307e8ee",
            C="023456aa110d84b4ac747aebd82c3b005aca50bf457ebd5737a4414fac3ae7d94d",
        ),
        Proof(
            amount=1,
            id="00ad268c4d1f5826",
            secret="56bcbcbb7cc6406b3fa5d57d2174f4eff8b4402b176926d3a57d3c3dcbb59d57",
            C="0273129c5719e599379a974a626363c333c56cafc0e6d01abe46d5808280789c63",
        ),
    ],
)


V4_CASES = [(V4_SINGLE, V4_SINGLE_TOKEN), (V4_MULTI, V4_MULTI_TOKEN)]


@pytest.mark.parametrize(("serialized", "expected"), V4_CASES)
def test_v4_decode(serialized: str, expected: Token) -> None:
    assert decode_token(serialized) == expected


@pytest.mark.parametrize(("serialized", "token"), V4_CASES)
def test_v4_encode_matches_vector(serialized: str, token: Token) -> None:
    """Byte-exact CBOR (key order t, d, m, u) -- the vector differs only by optional padding."""
    assert encode_token_v4(token) == serialized.rstrip("=")
    assert encode_token_v4(decode_token(serialized)) == serialized.rstrip("=")


def test_raw_v4_vector() -> None:
    raw = bytes.fromhex(RAW_V4_HEX)
    assert decode_token_raw(raw) == V4_SINGLE_TOKEN
    assert encode_token_raw_v4(V4_SINGLE_TOKEN) == raw


# ----------------------------------------------------------------------------------------- robustness


def test_whitespace_and_uri_prefix() -> None:
    expected = decode_token(V4_SINGLE)
    for variant in (f"  {V4_SINGLE}\n", f"cashu:{V4_SINGLE}", f"CASHU:{V4_SINGLE}", f"cashu://{V4_SINGLE}"):
        assert decode_token(variant) == expected
    assert decode_token(f"\tcashu:{V3_TOKEN} ") == decode_token(V3_TOKEN)


def _v3(obj: object) -> str:
    return "cashuA" + base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def _v4(obj: object) -> str:
    return "cashuB" + base64.urlsafe_b64encode(cbor2.dumps(obj)).decode().rstrip("=")


def test_v3_multi_mint_rejected() -> None:
    p = V3_PROOFS[0].to_dict()
    obj = {
        "token": [{"mint": "https://a.example", "proofs": [p]}, {"mint": "https://b.example", "proofs": [p]}]
    }
    with pytest.raises(TokenError, match="more than one mint"):
        decode_token(_v3(obj))


def test_v3_same_mint_twice_merged_and_defaults() -> None:
    p1, p2 = (p.to_dict() for p in V3_PROOFS)
    obj = {
        "token": [
            {"mint": "https://a.example/", "proofs": [p1]},
            {"mint": "https://a.example", "proofs": [p2]},
        ]
    }
    token = decode_token(_v3(obj))
    assert token.mint == "https://a.example"  # trailing slash stripped
    assert token.unit == "sat"  # missing unit
    assert token.memo is None
    assert token.proofs == V3_PROOFS


def _cbor_of(serialized: str) -> dict[str, object]:
    data = serialized[len("cashuB") :].rstrip("=")
    obj: dict[str, object] = cbor2.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    return obj


def test_v4_missing_unit_defaults_to_sat() -> None:
    obj = _cbor_of(V4_SINGLE)
    del obj["u"]
    assert decode_token(_v4(obj)).unit == "sat"


def test_v4_unknown_fields_ignored_and_dleq_witness_round_trip() -> None:
    obj: Any = _cbor_of(V4_MULTI)
    obj["x"] = "future field"
    obj["t"][0]["p"][0]["d"] = {"e": b"\x01" * 32, "s": b"\x02" * 32, "r": b"\x03" * 32}
    obj["t"][0]["p"][0]["w"] = '{"signatures":[]}'
    token = decode_token(_v4(obj))
    proof = token.proofs[0]
    assert proof.dleq is not None and proof.dleq.r == "03" * 32
    assert proof.witness == '{"signatures":[]}'
    assert decode_token(encode_token_v4(token)) == token
    assert decode_token(encode_token_v3(token)) == token
    assert decode_token(encode_token_v4(token, include_dleq=False)).proofs[0].dleq is None


def test_v4_short_ids_encoding() -> None:
    full = "01" + "ab" * 32
    token = Token(mint="http://m", unit="sat", proofs=[Proof(1, full, "s", V3_PROOFS[0].C)])
    assert decode_token(encode_token_v4(token, short_ids=True)).proofs[0].id == full[:16]
    assert decode_token(encode_token_v4(token)).proofs[0].id == full


GOOD_C = V3_PROOFS[0].C
GOOD_C_BYTES = bytes.fromhex(GOOD_C)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "cashu",
        "cashuC" + V4_SINGLE[6:],  # unknown version
        "cashuB",  # empty
        "cashuB!!!!",
        "cashuBAAAA",
        "cashuA" + base64.urlsafe_b64encode(b"not json").decode(),
        "cashuA" + base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        _v3([]),
        _v3({"token": []}),
        _v3({"token": [{"mint": "https://m", "proofs": []}]}),
        _v3({"token": [{"proofs": [V3_PROOFS[0].to_dict()]}]}),  # no mint
        _v3({"token": [{"mint": "https://m", "proofs": [{"amount": 1, "id": "00", "secret": "s"}]}]}),
        _v3({"token": [{"mint": "m", "proofs": [{"amount": -1, "id": "00", "secret": "s", "C": GOOD_C}]}]}),
        _v3({"token": [{"mint": "m", "proofs": [{"amount": 0, "id": "00", "secret": "s", "C": GOOD_C}]}]}),
        _v3({"token": [{"mint": "m", "proofs": [{"amount": True, "id": "00", "secret": "s", "C": GOOD_C}]}]}),
        _v3({"token": [{"mint": "m", "proofs": [{"amount": "1", "id": "00", "secret": "s", "C": GOOD_C}]}]}),
        _v3({"token": [{"mint": "m", "proofs": [{"amount": 1, "id": "00", "secret": 5, "C": GOOD_C}]}]}),
        _v3({"token": [{"mint": "m", "proofs": [{"amount": 1, "id": "00", "secret": "s", "C": "zz"}]}]}),
        _v3({"token": [{"mint": "m", "proofs": [V3_PROOFS[0].to_dict()]}], "unit": 5}),
        _v4({"m": "http://m", "u": "sat", "t": []}),
        _v4({"m": "http://m", "u": "sat"}),
        _v4({"u": "sat", "t": [{"i": b"\x00" * 8, "p": [{"a": 1, "s": "s", "c": bytes.fromhex(GOOD_C)}]}]}),
        _v4({"m": "http://m", "t": [{"i": b"\x00" * 8, "p": [{"a": 1, "s": "s", "c": b"\x02" * 5}]}]}),
        _v4(
            {
                "m": "http://m",
                "t": [{"i": b"\x00" * 8, "p": [{"a": 1.5, "s": "s", "c": bytes.fromhex(GOOD_C)}]}],
            }
        ),
        _v4({"m": "http://m", "t": [{"i": 7, "p": [{"a": 1, "s": "s", "c": bytes.fromhex(GOOD_C)}]}]}),
        _v4({"m": "http://m", "t": [{"i": b"\x00" * 8, "p": [{"a": 1, "c": bytes.fromhex(GOOD_C)}]}]}),
        _v4([1, 2, 3]),
    ],
)
def test_invalid_tokens_rejected(bad: str) -> None:
    with pytest.raises(TokenError):
        decode_token(bad)


def test_token_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        decode_token("nope")
