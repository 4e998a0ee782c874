"""The names a swap row is written with: its kind, its state, its proofs' states, its outputs' owners.

Pure names, no SQL: ``storage`` writes them, ``wallet`` dispatches on them. The values are the strings
the database has always held (a ``StrEnum`` member equals its string), so no migration is needed and
a row read back compares equal either way.
"""

from __future__ import annotations

from enum import StrEnum


class SwapKind(StrEnum):
    """What a swap is for; each has one operation in ``routstr.wallet.operations``."""

    REDEEM = "redeem"  # a user's token of a trusted mint swapped into the node's proofs
    REFUND = "refund"  # a key's balance paid back as a token of its mint
    WITHDRAW = "withdraw"  # the operator's earnings as a token
    CONVERT = "convert"  # a foreign mint's token melted there and minted at the primary
    MINT = "mint"  # a paid Lightning invoice minted into eCash (NUT-04)
    MELT = "melt"  # a key's balance paid out over Lightning (NUT-05)


class SwapState(StrEnum):
    """A swap is pending from before it is sent until it is finished (done) or undone (failed)."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class ProofState(StrEnum):
    """A proof the node holds: free to spend, taken by a swap in progress, or gone."""

    UNSPENT = "unspent"
    RESERVED = "reserved"
    SPENT = "spent"


class Owner(StrEnum):
    """Whose a recorded output is once signed: the node's, the user's (a token handed out), or a
    melt's blank output for the unused fee reserve (NUT-08)."""

    NODE = "node"
    USER = "user"
    CHANGE = "change"


# swaps whose inputs are a user's token (wiped once the swap ends: of no use to the node after)
USER_TOKEN_KINDS: tuple[SwapKind, ...] = (SwapKind.REDEEM, SwapKind.CONVERT)
# swaps whose node outputs credit a key when they complete (the others spend the node's inputs)
CREDITING_KINDS: tuple[SwapKind, ...] = (SwapKind.REDEEM, SwapKind.CONVERT, SwapKind.MINT)
# swaps taking money to a user (a token, a Lightning payment): owed until they end
PAYOUT_KINDS: tuple[SwapKind, ...] = (SwapKind.REFUND, SwapKind.MELT)
# proofs the node counts as its own
HELD: tuple[ProofState, ...] = (ProofState.UNSPENT, ProofState.RESERVED)
