"""What a token may cost to decode is bounded before any arithmetic or curve work (issue 14, item 2).

A token comes from anyone: a CBOR bignum amount (2^40000), a huge JSON integer, tens of thousands of
proofs or one proof repeated must be refused at parse time, quickly, as a 400 `invalid_token`.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, cast

import cbor2
import pytest

from routstr.cashu.errors import TokenError
from routstr.cashu.nut00 import Proof
from routstr.cashu.tokens import (
    MAX_AMOUNT,
    MAX_PROOFS,
    MAX_TOKEN_CHARS,
    Token,
    decode_token,
    decode_token_raw,
    encode_token_v3,
    encode_token_v4,
)
from routstr.core.errors import InvalidRequest
from routstr.wallet.mints import MintRegistry
from routstr.wallet.redeem import TokenInvalid, parse_token

C = "02bc9097997d81afb2cc7346b5e4345a9346bd2a506eb7958598a72f0cf85163ea"
KEYSET = "009a1f293253e41e"
MINT = "https://mint.example.com"


def proofs(*amounts: int, secret: str = "s") -> list[Proof]:
    return [Proof(a, KEYSET, f"{secret}{i}", C) for i, a in enumerate(amounts)]


def v4(ps: list[Proof]) -> str:
    return encode_token_v4(Token(MINT, "sat", ps))


def v3(ps: list[Proof]) -> str:
    return encode_token_v3(Token(MINT, "sat", ps))


def v4_raw(obj: Any) -> str:
    return "cashuB" + base64.urlsafe_b64encode(cbor2.dumps(obj)).decode().rstrip("=")


def v3_raw(text: str) -> str:
    return "cashuA" + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def refused(token: str, match: str) -> None:
    """Refused with a TokenError, in well under the time a bignum used to stall the loop for."""
    start = time.perf_counter()
    with pytest.raises(TokenError, match=match):
        decode_token(token)
    assert time.perf_counter() - start < 0.05


@pytest.mark.parametrize("encode", [v4, v3], ids=["v4", "v3"])
def test_a_bignum_amount_is_refused_before_any_arithmetic(encode: Any) -> None:
    # V4: CBOR bignum tag 2; V3: a JSON integer of 3,900 digits (under Python's 4,300-digit limit)
    exponent = 40_000 if encode is v4 else 13_000
    refused(encode(proofs(1, 2**exponent)), "CBOR|too large")


@pytest.mark.parametrize("encode", [v4, v3], ids=["v4", "v3"])
def test_amounts_are_positive_and_below_2_64(encode: Any) -> None:
    refused(encode(proofs(2**64)), "CBOR|too large|2\\^64")
    refused(encode(proofs(0)), "amount")
    refused(encode(proofs(1, -4)), "amount")
    refused(encode(proofs(2**63, 2**63)), "token amount must be below 2\\^64")
    assert decode_token(encode(proofs(MAX_AMOUNT))).amount == MAX_AMOUNT


def test_too_many_proofs_are_refused() -> None:
    def v4_of(n: int) -> str:  # the shortest proofs there are, to fit the length limit
        ps = [{"a": 1, "s": f"{i:x}", "c": bytes.fromhex(C)} for i in range(n)]
        return v4_raw({"m": MINT, "u": "sat", "t": [{"i": bytes.fromhex(KEYSET), "p": ps}]})

    assert len(decode_token(v4_of(MAX_PROOFS)).proofs) == MAX_PROOFS
    refused(v4_of(MAX_PROOFS + 1), "more than 1000 proofs")
    refused(v3_raw(json.dumps({"token": [{"mint": MINT, "proofs": [{}] * (MAX_PROOFS + 1)}]})), "more than")
    group = {"i": bytes.fromhex(KEYSET), "p": []}
    refused(v4_raw({"m": MINT, "t": [group] * (MAX_PROOFS + 1)}), "more than")


@pytest.mark.parametrize("encode", [v4, v3], ids=["v4", "v3"])
def test_the_same_secret_twice_is_refused(encode: Any) -> None:
    one = proofs(8)[0]
    refused(encode([one, one]), "same proof twice")
    refused(encode([one] * 33_000), "longer than")  # the 9-second token of issue 14


def test_an_over_long_token_is_refused_unread() -> None:
    refused("cashuB" + "A" * MAX_TOKEN_CHARS, "longer than")
    refused(" " * (MAX_TOKEN_CHARS + 1), "longer than")
    with pytest.raises(TokenError, match="longer than"):
        decode_token_raw(b"crawB" + b"\0" * MAX_TOKEN_CHARS)


def test_cbor_tags_are_refused() -> None:
    """A V4 token uses no tags; cbor2 would build regexes, dates, decimals or shared references."""
    proof = {"a": 1, "s": "x", "c": bytes.fromhex(C)}
    good = {"m": MINT, "u": "sat", "t": [{"i": bytes.fromhex(KEYSET), "p": [proof]}]}
    decode_token(v4_raw(good))
    for tag, payload in [(35, "a+"), (1, 0), (4, [1, 2]), (258, [1]), (28, "m"), (1000, 1)]:
        refused(v4_raw({**good, "d": cbor2.CBORTag(tag, payload)}), "CBOR")
    nested: Any = 1
    for _ in range(100):
        nested = [nested]
    refused(v4_raw({**good, "x": nested}), "CBOR")


def test_hostile_json_is_refused() -> None:
    refused(v3_raw("[" * 20_000 + "]" * 20_000), "JSON")
    entry = json.dumps({"mint": MINT, "proofs": []})
    refused(v3_raw(f'{{"token": [{entry}], "x": {"9" * 4000}}}'), "too large")
    entries = [{"mint": f"https://m{i}.example.com", "proofs": []} for i in range(2)]
    refused(v3_raw(json.dumps({"token": entries})), "more than one mint")


def test_parse_token_answers_400_invalid_token() -> None:
    """The node's envelope for all of these: 400 invalid_request / invalid_token (no mint touched)."""
    mints = cast(MintRegistry, None)
    for token in (v4(proofs(1, 2**40_000)), v3(proofs(8) * 2), "cashuB" + "A" * MAX_TOKEN_CHARS):
        with pytest.raises(TokenInvalid) as e:
            parse_token(token, mints)
        assert isinstance(e.value, InvalidRequest)
        assert e.value.status == 400 and e.value.envelope()["error"]["code"] == "invalid_token"
