"""A swap answered with an error that is no definite refusal (Nutshell's code 0), on a real Nutshell mint.

Nutshell spends the inputs and signs the outputs in one transaction, then clears the inputs' pending
marks in a ``finally``; an exception there is answered with code 0 although the swap committed. The
mint here is made to fail exactly there, deterministically: a trigger in its own database refuses to
delete pending marks (its answers are Nutshell's own). A crafted proof whose C is no curve point gets
code 0 too, before anything is spent. The node must tell the two apart from the mint's records.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import select

from routstr.cashu.errors import MintOutcomeUnknown
from routstr.cashu.mint_client import MintClient
from routstr.cashu.nut00 import Proof
from routstr.cashu.outputs import prepare_outputs
from routstr.cashu.tokens import Token, decode_token, encode_token_v4, resolve_short_keyset_ids
from routstr.core.errors import ServiceUnavailable
from routstr.core.swap_kinds import SwapKind, SwapState
from routstr.devtools.nutshell import NutshellMint
from routstr.devtools.test_wallet import TestWallet
from routstr.storage import accounts
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from routstr.storage.schema import swaps
from routstr.wallet.mints import MintRegistry
from routstr.wallet.redeem import Redeemer, Target, TokenInvalid
from routstr.wallet.refund import Refunder
from tests.conftest import fresh_database

pytestmark = pytest.mark.mint  # registered by tests/conftest.py: "runs a real Nutshell mint"

NOT_A_POINT = "02" + "00" * 32  # x = 0: no point of secp256k1 has it


@pytest.fixture(scope="module")
def mint(nutshell_python: Path) -> Iterator[NutshellMint]:
    with NutshellMint("after-commit") as m:
        yield m


@contextmanager
def pending_marks_stick(mint: NutshellMint) -> Iterator[None]:
    """While inside: the mint's swaps commit, then fail clearing their pending marks (code 0)."""
    db = sqlite3.connect(mint.workdir / "db" / "mint.sqlite3")
    try:
        db.execute(
            "CREATE TRIGGER stick BEFORE DELETE ON proofs_pending "
            "BEGIN SELECT RAISE(ABORT, 'pending marks stick (test)'); END"
        )
        db.commit()
        yield
    finally:
        db.execute("DROP TRIGGER IF EXISTS stick")
        db.commit()
        db.close()


@pytest_asyncio.fixture
async def node(
    backend: str, tmp_path: Path, mint: NutshellMint
) -> AsyncIterator[tuple[Database, MintRegistry]]:
    async with fresh_database(backend, tmp_path) as url, aiohttp.ClientSession() as session:
        await upgrade(url)
        db = Database(url)
        try:
            yield db, MintRegistry((mint.url,), session, 20.0)
        finally:
            await db.close()


async def swap_states(db: Database) -> list[str]:
    async with db.read() as conn:
        return [str(s) for s in (await conn.execute(select(swaps.c.state))).scalars()]


async def test_the_mint_answers_code_0_before_and_after_it_spends(
    mint: NutshellMint, wallet: TestWallet
) -> None:
    async with aiohttp.ClientSession() as session:
        client = MintClient(mint.url, session)
        keyset = await client.active_keyset()
        short = decode_token(await wallet.asend(mint.url, 8)).proofs
        real = resolve_short_keyset_ids(short, await client.keyset_ids())
        crafted = Proof(8, keyset.id, secrets.token_hex(32), NOT_A_POINT)
        with pytest.raises(MintOutcomeUnknown) as before:
            await client.swap([crafted], [o.to_blinded_message() for o in prepare_outputs([8], keyset.id)])
        assert before.value.code == 0 and before.value.status == 400

        outputs = prepare_outputs([8], keyset.id)
        with pending_marks_stick(mint), pytest.raises(MintOutcomeUnknown) as after:
            await client.swap(real, [o.to_blinded_message() for o in outputs])
        assert after.value.code == 0 and "pending marks stick" in after.value.detail
        # ... yet the swap happened: the inputs are spent and the outputs signed
        assert set((await client.check_state([p.Y for p in real])).values()) == {"SPENT"}
        assert [bm.B_ for bm, _ in await client.restore([o.to_blinded_message() for o in outputs])] == [
            outputs[0].B_
        ]


async def test_redeem_after_commit_is_credited(
    node: tuple[Database, MintRegistry], mint: NutshellMint, wallet: TestWallet
) -> None:
    db, mints = node
    redeemer = Redeemer(db, mints, os.urandom(32))
    token = decode_token(await wallet.asend(mint.url, 21))
    with pending_marks_stick(mint):
        got = await redeemer.redeem(token, Target(new_key_hash=os.urandom(16).hex()))
    assert got.amount_msat == 21_000 and got.fresh
    async with db.read() as conn:
        key = await accounts.key_by_id(conn, got.key_id)
    assert key is not None and key.balance_msat == 21_000
    assert await swap_states(db) == [SwapState.DONE]


async def test_crafted_token_with_no_point_is_refused_and_leaves_nothing(
    node: tuple[Database, MintRegistry], mint: NutshellMint
) -> None:
    db, mints = node
    keyset = await mints.active_keyset(mint.url, "sat")
    crafted = Token(mint.url, "sat", [Proof(8, keyset.id, secrets.token_hex(32), NOT_A_POINT)])
    token = decode_token(encode_token_v4(crafted))
    new_key = os.urandom(16).hex()
    with pytest.raises(TokenInvalid) as refused:
        await Redeemer(db, mints, os.urandom(32)).redeem(token, Target(new_key_hash=new_key))
    assert refused.value.details == {"mint_code": 0}
    assert await swap_states(db) == []  # no row, no key: it cost nothing
    async with db.read() as conn:
        assert await accounts.key_by_hash(conn, new_key) is None


async def test_refund_after_commit_keeps_the_token_for_the_user(
    node: tuple[Database, MintRegistry], mint: NutshellMint, wallet: TestWallet
) -> None:
    db, mints = node
    got = await Redeemer(db, mints, os.urandom(32)).redeem(
        decode_token(await wallet.asend(mint.url, 30)), Target(new_key_hash=os.urandom(16).hex())
    )
    refunder = Refunder(db, mints)
    with pending_marks_stick(mint):
        with pytest.raises(ServiceUnavailable):  # "call refund again"
            await refunder.refund(got.key_id)
    async with db.read() as conn:
        key = await accounts.key_by_id(conn, got.key_id)
        refund = (
            await conn.execute(select(swaps.c.state).where(swaps.c.kind == SwapKind.REFUND))
        ).scalar_one()
    # the mint carried it out: the debit stands and the token is kept, not undone
    assert key is not None and key.balance_msat == 0 and refund == SwapState.DONE
    again = await refunder.refund(got.key_id)
    assert again.amount == 30
    assert set(await wallet.acheck(again.token)) == {"UNSPENT"}
    assert await wallet.areceive(again.token) == 30
