"""Every swap kind's operation, in one table: how its swaps are recovered and undone.

The operations are listed here by name, so the table does not depend on which modules happen to have
been imported; building it checks that every ``SwapKind`` has exactly one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from routstr.core.swap_kinds import SwapKind
from routstr.wallet import convert, lightning_in, lightning_out, redeem, refund, withdraw
from routstr.wallet.swaps import Operation


def build_registry(operations: tuple[Operation, ...]) -> Mapping[SwapKind, Operation]:
    """The table of ``operations`` by kind; refuses a kind declared twice or not at all."""
    table: dict[SwapKind, Operation] = {}
    for op in operations:
        if op.kind in table:
            raise ValueError(f"two operations for swaps of kind {op.kind!r}")
        table[op.kind] = op
    missing = set(SwapKind) - table.keys()
    if missing:
        raise ValueError(f"no operation for swaps of kind {sorted(missing)}")
    return MappingProxyType(table)


OPERATIONS: Mapping[SwapKind, Operation] = build_registry(
    (
        redeem.OPERATION,
        refund.OPERATION,
        withdraw.OPERATION,
        convert.OPERATION,
        lightning_in.OPERATION,  # mint
        lightning_out.OPERATION,  # melt
    )
)
