"""Exceptions of the Cashu layer.

Callers branch on the class: a `TokenError` is the payer's fault (reject the request), a `MintError` is a
definite answer from the mint (e.g. already spent), `MintUnavailable` means we do not know what happened
(`MintOutcomeUnknown`: the mint answered, but with an error that does not say whether it went through).
"""

from __future__ import annotations

from typing import Any


class CashuError(Exception):
    """Base class of every error raised by `routstr.cashu`."""


class TokenError(CashuError, ValueError):
    """A serialized token (or a proof inside it) is malformed or cannot be resolved."""


class CashuProtocolError(CashuError):
    """The mint answered, but its answer breaks the protocol (bad shapes, wrong amounts, bad DLEQ)."""


class ErrorCode:
    """NUT error codes (see the spec's error_codes.md) that callers branch on."""

    PROOF_VERIFICATION_FAILED = 10001
    TRANSACTION_GENERIC = 11000  # Nutshell's base code of transaction errors (not in the spec table)
    PROOFS_ALREADY_SPENT = 11001
    PROOFS_PENDING = 11002
    OUTPUTS_ALREADY_SIGNED = 11003
    OUTPUTS_PENDING = 11004
    TRANSACTION_UNBALANCED = 11005
    DUPLICATE_INPUTS = 11007
    DUPLICATE_OUTPUTS = 11008
    KEYSET_UNKNOWN = 12001
    KEYSET_INACTIVE = 12002


# Error codes with which a mint refuses a swap before it spends anything. Nutshell (0.20) checks the
# request (proofs, outputs, amounts, units, keysets) and marks the inputs pending before it spends them
# and signs in one database transaction: every coded error is raised before that transaction commits
# (or inside it, rolled back). Its code 0 (any unexpected exception) is not here: the `finally` that
# clears the inputs' pending marks runs after the commit and can fail too. Codes a mint may use for an
# internal error (CDK's "unknown", the 2xxxx Lightning codes, anything new) are not here either: an
# answer the table does not know is an unknown outcome, settled from the mint's records.
SWAP_REFUSAL_CODES: frozenset[int] = frozenset(
    {
        10000,  # Nutshell: not allowed (e.g. an invalid amount)
        ErrorCode.PROOF_VERIFICATION_FAILED,  # 10001 (also Nutshell's "no secret in proofs")
        10002,  # spec before 2026: blinded message of output already signed
        10003,  # spec before 2026: token could not be verified
        ErrorCode.TRANSACTION_GENERIC,  # 11000, Nutshell: unbalanced, unknown keyset, bad secret, ...
        *range(11001, 11016),  # spent, pending, outputs signed/pending, unbalanced, limits, duplicates,
        # units, max inputs/outputs (Nutshell: 11003/11004 also secret/witness too long)
        11016,  # duplicate quote ids (batch)
        11017,  # batch too large
        12000,  # Nutshell: keyset error
        ErrorCode.KEYSET_UNKNOWN,  # 12001
        ErrorCode.KEYSET_INACTIVE,  # 12002
        12003,  # keyset expired
        *range(30001, 30003),  # NUT-21 clear auth required/failed (spec)
        *range(31001, 31005),  # NUT-22 blind auth (spec)
        *range(80001, 80003),  # NUT-21 (Nutshell 0.20's numbers)
        *range(81001, 81005),  # NUT-22 (Nutshell 0.20's numbers)
    }
)


def is_swap_refusal(code: int | None, status: int) -> bool:
    """True if a swap's error answer certainly means the mint spent none of its inputs: a code of
    `SWAP_REFUSAL_CODES`, or HTTP 422 (the body failed validation before the swap ran)."""
    return status == 422 or (code is not None and code in SWAP_REFUSAL_CODES)


class MintError(CashuError):
    """A definite rejection by the mint: HTTP 4xx with the NUT-00 body `{"detail", "code"}`."""

    def __init__(self, detail: str, code: int | None = None, status: int = 400) -> None:
        super().__init__(f"mint error {code}: {detail}" if code is not None else f"mint error: {detail}")
        self.detail = detail
        self.code = code
        self.status = status

    @classmethod
    def from_body(cls, body: Any, status: int) -> MintError:
        """Build from a decoded error body; tolerate mints that omit or mistype fields."""
        detail = body.get("detail") if isinstance(body, dict) else None
        code = body.get("code") if isinstance(body, dict) else None
        if isinstance(code, str) and code.isdigit():
            code = int(code)
        return cls(
            detail=str(detail) if detail is not None else "unknown error",
            code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            status=status,
        )

    @property
    def is_already_spent(self) -> bool:
        """True if at least one input was already spent (a double spend)."""
        return self.code == ErrorCode.PROOFS_ALREADY_SPENT

    @property
    def is_pending(self) -> bool:
        """True if inputs are locked by another in-flight transaction (retry later or check state)."""
        return self.code == ErrorCode.PROOFS_PENDING

    @property
    def is_outputs_already_signed(self) -> bool:
        """True if the mint signed these outputs before: recover them with NUT-09 restore."""
        return self.code == ErrorCode.OUTPUTS_ALREADY_SIGNED

    @property
    def is_unbalanced(self) -> bool:
        """True if inputs - fees != outputs (usually a wrong fee computation).

        Nutshell (0.20) raises this as its generic code 11000 instead of 11005, so match its message too.
        """
        if self.code == ErrorCode.TRANSACTION_UNBALANCED:
            return True
        return self.code == ErrorCode.TRANSACTION_GENERIC and "not balanced" in self.detail

    @property
    def is_invalid_proof(self) -> bool:
        """True if the mint says a proof's signature does not verify (forged or foreign proof)."""
        return self.code == ErrorCode.PROOF_VERIFICATION_FAILED


class MintUnavailable(CashuError):
    """No usable answer: connection error, timeout, 5xx, 429 or a non-JSON body.

    `maybe_processed` is False only when the request certainly never reached the mint (connection
    refused / DNS failure). Otherwise a swap may have gone through and its outputs should be recovered
    with NUT-09 restore before the inputs are considered unspent.
    """

    def __init__(self, message: str, *, status: int | None = None, maybe_processed: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.maybe_processed = maybe_processed


class MintOutcomeUnknown(MintUnavailable):
    """The mint answered a call that issues or spends value with an error that is no definite refusal
    (Nutshell's code 0: an unexpected exception, which can strike after the swap or melt committed).

    Unlike a lost answer, the mint is done with the request: its records (NUT-07 state of the inputs,
    NUT-09 restore of the outputs) now say for good what happened, unless they say PENDING.
    """

    def __init__(self, message: str, *, detail: str, code: int | None, status: int) -> None:
        super().__init__(message, status=status, maybe_processed=True)
        self.detail = detail
        self.code = code
