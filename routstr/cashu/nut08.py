"""NUT-08: blank outputs that let the mint return overpaid Lightning fees of a melt as change.

The mint writes the change amounts (largest first) into the first blank outputs, in order, and signs
only those; it never returns more than was given blank outputs, so too few of them lose change.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import CashuProtocolError
from .nut00 import BlindedMessage, BlindedSignature, Proof
from .nut01 import Keyset
from .outputs import PreparedOutput, prepare_outputs, unblind_signatures

# the amount written into a blank output: ignored by the mint, but it must be a valid JSON amount
BLANK_AMOUNT = 1


def blank_output_count(fee_reserve: int) -> int:
    """max(ceil(log2(fee_reserve)), 1), or 0 without a fee reserve; integer-exact (no floats)."""
    if fee_reserve < 0:
        raise ValueError("fee reserve must not be negative")
    if fee_reserve == 0:
        return 0
    # ceil(log2(n)) == (n - 1).bit_length() for n >= 1
    return max((fee_reserve - 1).bit_length(), 1)


def prepare_blank_outputs(max_change: int, keyset_id: str) -> list[PreparedOutput]:
    """Enough blank outputs for any change up to `max_change`, with random secrets.

    `max_change` is what the inputs exceed the quote's amount plus input fees by: the fee reserve when
    the inputs are exact, more when they overshoot (the mint returns that excess as change too, but only
    into as many outputs as it was given). For NUT-13 secrets, use `PreparedOutput.create(BLANK_AMOUNT, ...)`.
    """
    return prepare_outputs([BLANK_AMOUNT] * blank_output_count(max_change), keyset_id)


def unblind_change(
    blank: list[PreparedOutput], change: list[BlindedSignature], keyset: Keyset, verify_dleq: bool = True
) -> list[Proof]:
    """Proofs from a melt's change: signature i belongs to blank output i, with the amount the mint chose."""
    if len(change) > len(blank):
        raise CashuProtocolError(
            f"mint returned {len(change)} change signatures for {len(blank)} blank outputs"
        )
    filled = [replace(out, amount=sig.amount) for out, sig in zip(blank, change, strict=False)]
    return unblind_signatures(filled, change, keyset, verify_dleq=verify_dleq)


def unblind_restored_change(
    blank: list[PreparedOutput],
    restored: list[tuple[BlindedMessage, BlindedSignature]],
    keyset: Keyset,
    verify_dleq: bool = True,
) -> list[Proof]:
    """Proofs from a NUT-09 restore of blank outputs (change of a melt whose answer was lost).

    Matched by B_; the amount is the one the mint imprinted, so `outputs.unblind_restored` (which
    expects the amounts asked for) does not fit here.
    """
    by_b = {p.B_: p for p in blank}
    filled: list[PreparedOutput] = []
    for msg, sig in restored:
        out = by_b.get(msg.B_.lower())
        if out is None:
            raise CashuProtocolError("restore returned an output that was not asked for")
        filled.append(replace(out, amount=sig.amount))
    return unblind_signatures(filled, [sig for _, sig in restored], keyset, verify_dleq=verify_dleq)
