"""A token's identity and holder mark (``routstr.cashu.identity``), without a mint.

What only the token's holder has must decide what it opens: its signatures ``C`` (which a forger
holding only the secrets lacks) and, when its wallet kept them, the DLEQ blinding factors ``r``
(which not even the mint sees).
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from coincurve import PrivateKey

from routstr.cashu.identity import holder_mark, holder_matches, legacy_token_identity, token_identity
from routstr.cashu.nut00 import DLEQProof, Proof
from routstr.cashu.tokens import Token, decode_token, encode_token_v3, encode_token_v4

NODE = b"node secret"
MINT = "https://mint.example"
KEYSET = "00ad268c4d1f5826"
G = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"


def _hex32() -> str:
    return secrets.token_hex(32)


def _proof(amount: int, with_r: bool = True) -> Proof:
    dleq = DLEQProof(e=_hex32(), s=_hex32(), r=_hex32() if with_r else None)
    return Proof(amount, KEYSET, _hex32(), PrivateKey().public_key.format().hex(), dleq)


def _token(*proofs: Proof) -> Token:
    return Token(mint=MINT, unit="sat", proofs=list(proofs))


def test_the_same_token_in_any_encoding_has_one_identity_and_mark() -> None:
    token = _token(_proof(8), _proof(2))
    v3, v4 = decode_token(encode_token_v3(token)), decode_token(encode_token_v4(token))
    reordered = _token(*reversed(token.proofs))
    upper_c = _token(*(replace(p, C=p.C.upper()) for p in token.proofs))
    slash = replace(token, mint=MINT + "/")
    ids = {token_identity(NODE, t) for t in (token, v3, v4, reordered, upper_c, slash)}
    marks = {holder_mark(NODE, t) for t in (token, v3, v4, reordered)}
    assert len(ids) == 1 and len(marks) == 1 and None not in marks


def test_secrets_with_made_up_signatures_name_another_identity() -> None:
    token = _token(_proof(8), _proof(2))
    forged = _token(*(replace(p, C=G, amount=1, dleq=None) for p in token.proofs))
    one_forged = _token(token.proofs[0], replace(token.proofs[1], C=G))
    assert token_identity(NODE, forged) != token_identity(NODE, token)
    assert token_identity(NODE, one_forged) != token_identity(NODE, token)


def test_the_identity_depends_on_the_node_secret_and_the_mint() -> None:
    token = _token(_proof(4))
    assert token_identity(NODE, token) != token_identity(b"another node", token)
    assert token_identity(NODE, token) != token_identity(NODE, replace(token, mint="https://other.example"))


def test_the_mark_needs_every_proof_s_blinding_factor() -> None:
    token = _token(_proof(8), _proof(2))
    assert holder_mark(NODE, _token(token.proofs[0], replace(token.proofs[1], dleq=None))) is None
    no_r = _token(*(replace(p, dleq=replace(p.dleq, r=None)) for p in token.proofs if p.dleq))
    assert holder_mark(NODE, no_r) is None
    other_r = _token(token.proofs[0], replace(token.proofs[1], dleq=DLEQProof(_hex32(), _hex32(), _hex32())))
    assert holder_mark(NODE, other_r) not in (None, holder_mark(NODE, token))
    # the identity does not change with what rides beside the signatures
    assert token_identity(NODE, no_r) == token_identity(NODE, token) == token_identity(NODE, other_r)


def test_a_recorded_mark_must_be_shown_again() -> None:
    mark = holder_mark(NODE, _token(_proof(1)))
    assert holder_matches(None, None) and holder_matches(None, mark)
    assert holder_matches(mark, mark)
    assert not holder_matches(mark, None)
    assert not holder_matches(mark, holder_mark(NODE, _token(_proof(1))))


def test_the_legacy_identity_is_the_secrets_only_form() -> None:
    """What nodes stored before (kept to re-key their rows): an HMAC of the mint and sorted secrets,
    the same for any signatures, which is why it had to go."""
    import hashlib
    import hmac

    token = _token(_proof(8), _proof(2))
    expected = hmac.new(
        NODE, (MINT + "\n" + "\n".join(sorted(p.secret for p in token.proofs))).encode(), hashlib.sha256
    ).hexdigest()
    assert legacy_token_identity(NODE, MINT + "/", [p.secret for p in token.proofs]) == expected
