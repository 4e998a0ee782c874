"""Re-keying tokens redeemed before a token's identity covered its signatures (issue 14).

Older nodes knew a token by an HMAC of its secrets alone, which the mint (and anyone holding the
secrets) could reproduce. The node kept every redeemed token's proofs, so each old identity can be
recomputed from them, checked against the stored one, and replaced, after which those proofs are
wiped. Runs once per database (a setting marks it done, claimed in the same transaction), at start.
A token that created an ``sk-`` key keeps that key; only asking ``/v1/balance/create`` for it again
with the same token no longer returns it (that key was derived from the old identity).
"""

from __future__ import annotations

import logging
from contextlib import suppress

from sqlalchemy.exc import IntegrityError

from routstr.cashu.identity import legacy_token_identity, token_identity
from routstr.cashu.nut00 import Proof
from routstr.cashu.tokens import Token
from routstr.core.swap_kinds import SwapKind
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database

log = logging.getLogger(__name__)

DONE_SETTING = "token_identity_version"
VERSION = "2"


async def upgrade_token_identities(db: Database, node_secret: bytes) -> int:
    """Re-key old token rows once; returns how many were re-keyed (0 when already done)."""
    async with db.read() as conn:
        if await accounts.get_setting(conn, DONE_SETTING) == VERSION:
            return 0
    rekeyed = skipped = 0
    with suppress(IntegrityError):  # another process of the fleet claimed it: it does the work
        async with db.write() as conn:
            if await accounts.get_setting(conn, DONE_SETTING) == VERSION:
                return 0  # done by another process since the read above
            await accounts.put_setting_if_absent(conn, DONE_SETTING, VERSION)
            for swap in await wallet_store.token_swaps(conn):
                new = _new_identity(node_secret, swap)
                if new is None:
                    skipped += 1
                    continue
                assert swap.token_hash is not None
                await wallet_store.rekey_token(conn, swap.id, swap.token_hash, new)
                rekeyed += 1
            wiped = await wallet_store.wipe_ended_token_inputs(conn)
        if rekeyed or skipped or wiped:
            log.info(
                "token identities: %d re-keyed, %d without recorded proofs left as they were, "
                "%d ended swaps' proofs wiped",
                rekeyed,
                skipped,
                wiped,
            )
    return rekeyed


def _new_identity(node_secret: bytes, swap: wallet_store.SwapRow) -> str | None:
    """The token's identity computed from its recorded proofs, if they are the ones its old one
    names (None: no proofs kept, or recorded under another identity already)."""
    mint = swap.mint_url
    if swap.kind == SwapKind.CONVERT:  # recorded by the foreign mint's token it came from
        mint = str((swap.detail or {}).get("foreign_mint", ""))
    try:
        proofs = [Proof.from_dict(p) for p in swap.inputs]
    except (ValueError, KeyError, TypeError):
        return None
    if not proofs or not mint:
        return None
    if legacy_token_identity(node_secret, mint, [p.secret for p in proofs]) != swap.token_hash:
        return None
    return token_identity(node_secret, Token(mint=mint, unit=swap.unit, proofs=proofs))
