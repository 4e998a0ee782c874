"""NUT-08: blank outputs that let the mint return overpaid Lightning fees of a melt as change."""

from __future__ import annotations


def blank_output_count(fee_reserve: int) -> int:
    """max(ceil(log2(fee_reserve)), 1), or 0 without a fee reserve; integer-exact (no floats)."""
    if fee_reserve < 0:
        raise ValueError("fee reserve must not be negative")
    if fee_reserve == 0:
        return 0
    # ceil(log2(n)) == (n - 1).bit_length() for n >= 1
    return max((fee_reserve - 1).bit_length(), 1)
