"""Joining the parts of an X-Cashu request's change into one token (``wallet.change_parts.join``)."""

from __future__ import annotations

import pytest

from routstr.cashu.nut00 import Proof
from routstr.cashu.tokens import Token, decode_token, encode_token_v4
from routstr.wallet.change_parts import join
from routstr.wallet.refund import Refund

MINT = "https://mint.example"
KEYSET = "00ad268c4d1f5826"
G = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"  # any point will do


def part(amounts: list[int], tag: str, unit: str = "sat", mint: str = MINT) -> Refund:
    proofs = [Proof(amount=a, id=KEYSET, secret=f"{tag}{i}" * 8, C=G) for i, a in enumerate(amounts)]
    token = encode_token_v4(Token(mint=mint, unit=unit, proofs=proofs))
    return Refund(token, sum(amounts), unit, mint, sum(amounts) * 1000)


def test_parts_join_into_one_token_holding_all_their_proofs() -> None:
    early, rest = part([64, 16, 8], "e"), part([4, 1], "r")
    joined = join([early, rest])
    assert joined is not None
    assert (joined.amount, joined.unit, joined.mint_url, joined.debited_msat) == (93, "sat", MINT, 93_000)
    token = decode_token(joined.token)
    assert (token.mint, token.unit, token.amount) == (MINT, "sat", 93)
    secrets = [p.secret for p in decode_token(early.token).proofs + decode_token(rest.token).proofs]
    assert [p.secret for p in token.proofs] == secrets


def test_one_part_is_its_own_token_and_none_is_none() -> None:
    only = part([2], "o")
    assert join([only]) is only
    assert join([]) is None


def test_parts_of_different_mints_or_units_are_never_joined() -> None:
    with pytest.raises(ValueError):
        join([part([1], "a"), part([1], "b", unit="msat")])
    with pytest.raises(ValueError):
        join([part([1], "a"), part([1], "b", mint="https://other.example")])
