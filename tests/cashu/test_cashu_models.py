"""Wire models of NUT-03/07/08/09, short keyset id resolution, and errors."""

from __future__ import annotations

from typing import Any

import pytest

from routstr.cashu.errors import MintError, TokenError
from routstr.cashu.nut00 import BlindedMessage, BlindedSignature, DLEQProof, Proof, hash_to_curve
from routstr.cashu.nut03 import PostSwapRequest, PostSwapResponse
from routstr.cashu.nut07 import PostCheckStateResponse, ProofState
from routstr.cashu.nut08 import blank_output_count
from routstr.cashu.nut09 import PostRestoreResponse
from routstr.cashu.tokens import resolve_short_keyset_ids

C = "02bc9097997d81afb2cc7346b5e4345a9346bd2a506eb7958598a72f0cf85163ea"
FULL_A = "01" + "aa" * 32
FULL_B = "01" + "bb" * 32
FULL_A2 = "01" + "aa" * 7 + "cc" * 25  # shares the 8-byte prefix with FULL_A
V1_ID = "009a1f293253e41e"


def test_proof_y_and_input_dict() -> None:
    p = Proof(2, V1_ID, "secret", C, DLEQProof("01" * 32, "02" * 32, "03" * 32), witness="w")
    assert p.Y == hash_to_curve(b"secret").format().hex()
    assert p.to_input_dict() == {"amount": 2, "id": V1_ID, "secret": "secret", "C": C, "witness": "w"}
    assert "dleq" in p.to_dict() and "dleq" not in p.to_dict(include_dleq=False)
    body = PostSwapRequest([p], [BlindedMessage(2, V1_ID, C)]).to_dict()
    assert body == {"inputs": [p.to_input_dict()], "outputs": [{"amount": 2, "id": V1_ID, "B_": C}]}


def test_swap_response() -> None:
    sig = {"amount": 2, "id": V1_ID, "C_": C, "dleq": {"e": "01" * 32, "s": "02" * 32}}
    [parsed] = PostSwapResponse.from_dict({"signatures": [sig]}).signatures
    assert parsed == BlindedSignature(2, V1_ID, C, DLEQProof("01" * 32, "02" * 32))
    assert parsed.to_dict() == sig
    bads: list[Any] = [{}, {"signatures": None}, {"signatures": [{"amount": 2, "id": V1_ID}]}, []]
    for bad in bads:
        with pytest.raises(ValueError):
            PostSwapResponse.from_dict(bad)


def test_check_state_response() -> None:
    body = {
        "states": [
            {"Y": "02aa", "state": "SPENT", "witness": None},
            {"Y": "02bb", "state": "UNSPENT"},
            {"Y": "02cc", "state": "PENDING"},
        ]
    }
    states = PostCheckStateResponse.from_dict(body).states
    assert [s.state for s in states] == [ProofState.SPENT, ProofState.UNSPENT, ProofState.PENDING]
    assert states[0].state == "SPENT"
    with pytest.raises(ValueError):
        PostCheckStateResponse.from_dict({"states": [{"Y": "02aa", "state": "BURNT"}]})


def test_restore_response() -> None:
    out = {"amount": 1, "id": V1_ID, "B_": C}
    sig = {"amount": 1, "id": V1_ID, "C_": C}
    parsed = PostRestoreResponse.from_dict({"outputs": [out], "signatures": [sig]})
    assert parsed.outputs[0].B_ == C and parsed.signatures[0].C_ == C
    with pytest.raises(ValueError):
        PostRestoreResponse.from_dict({"outputs": [out], "signatures": []})


@pytest.mark.parametrize(
    ("fee_reserve", "count"),
    [(0, 0), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (1000, 10), (1024, 10), (1025, 11)],
)
def test_blank_output_count(fee_reserve: int, count: int) -> None:
    assert blank_output_count(fee_reserve) == count


def _p(keyset_id: str) -> Proof:
    return Proof(1, keyset_id, "s", C)


def test_resolve_short_ids() -> None:
    known = [FULL_A, FULL_B, V1_ID]
    resolved = resolve_short_keyset_ids(
        [_p(FULL_A[:16]), _p(FULL_B), _p(V1_ID), _p(FULL_B[:16].upper())], known
    )
    assert [p.id for p in resolved] == [FULL_A, FULL_B, V1_ID, FULL_B]


@pytest.mark.parametrize(
    ("keyset_id", "known", "match"),
    [
        (FULL_A[:16], [FULL_A, FULL_A2], "ambiguous"),
        (FULL_A[:16], [FULL_B], "unknown"),
        ("01" + "ff" * 32, [FULL_A], "unknown"),
        ("00ffffffffffffff", [V1_ID], "unknown"),
        (FULL_A[:10], [FULL_A], "unknown"),  # only exactly 8-byte prefixes are short ids
    ],
)
def test_resolve_short_ids_errors(keyset_id: str, known: list[str], match: str) -> None:
    with pytest.raises(TokenError, match=match):
        resolve_short_keyset_ids([_p(keyset_id)], known)


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ({"detail": "proofs already spent", "code": 11001}, 11001, "proofs already spent"),
        ({"detail": "x", "code": "11002"}, 11002, "x"),
        ({"detail": [{"msg": "field required"}]}, None, "[{'msg': 'field required'}]"),
        ({"code": 0}, 0, "unknown error"),
        ("junk", None, "unknown error"),
    ],
)
def test_mint_error_from_body(body: Any, code: int | None, detail: str) -> None:
    err = MintError.from_body(body, 400)
    assert (err.code, err.detail, err.status) == (code, detail, 400)
    assert err.is_already_spent == (code == 11001)
    assert err.is_pending == (code == 11002)
