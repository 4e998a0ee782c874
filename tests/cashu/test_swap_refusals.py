"""Which error answers to a swap are definite refusals (the inputs were not spent), and which leave the
outcome unknown (Nutshell's code 0: the swap may have committed before the error)."""

from __future__ import annotations

import pytest

from routstr.cashu.errors import ErrorCode, is_swap_refusal

# NUT error codes a mint answers a swap with while checking it, before it spends anything
REFUSALS = [
    10000,  # Nutshell: not allowed
    ErrorCode.PROOF_VERIFICATION_FAILED,
    10002,  # older spec: output already signed
    10003,  # older spec: token could not be verified
    ErrorCode.TRANSACTION_GENERIC,  # Nutshell's 11000
    ErrorCode.PROOFS_ALREADY_SPENT,
    ErrorCode.PROOFS_PENDING,
    ErrorCode.OUTPUTS_ALREADY_SIGNED,
    ErrorCode.OUTPUTS_PENDING,
    ErrorCode.TRANSACTION_UNBALANCED,
    11006,  # amount outside the limits
    ErrorCode.DUPLICATE_INPUTS,
    ErrorCode.DUPLICATE_OUTPUTS,
    11009,  # multiple units
    11010,  # unit mismatch
    11013,  # unit not supported
    11014,  # max inputs
    11015,  # max outputs
    12000,  # Nutshell: keyset error
    ErrorCode.KEYSET_UNKNOWN,
    ErrorCode.KEYSET_INACTIVE,
    12003,  # keyset expired
    30001,
    31002,
    80001,  # Nutshell's auth numbers
    81004,
]

# the outcome is unknown: an unexpected exception (0), no code at all, codes of other operations or of
# internal errors, and codes the table does not know
UNKNOWN = [None, 0, 1, 999, 10004, 11018, 12004, 20000, 20004, 20005, 50000, 99999]


@pytest.mark.parametrize("code", REFUSALS)
def test_refusal_codes_are_definite(code: int) -> None:
    assert is_swap_refusal(code, 400)


@pytest.mark.parametrize("code", UNKNOWN)
def test_other_answers_leave_the_outcome_unknown(code: int | None) -> None:
    assert not is_swap_refusal(code, 400)
    assert not is_swap_refusal(code, 500)


def test_body_validation_is_a_refusal_whatever_the_code() -> None:
    # FastAPI's 422: the body did not parse, the swap never ran
    assert is_swap_refusal(None, 422) and is_swap_refusal(0, 422)
