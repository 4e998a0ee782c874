"""Redeeming a user's Cashu token into a key's balance, exactly once.

The steps, each committed before the next begins:
1. record the swap (the user's proofs and our fresh outputs) and the key it will credit;
2. ask the mint to swap the proofs for our outputs;
3. store the new proofs and credit the key in one transaction.
A crash after 1 leaves a pending swap that ``recovery`` finishes (NUT-09 restore) or undoes (NUT-07).
Concurrent requests with the same token wait for the first one instead of racing it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.cashu.errors import CashuError, MintError, MintOutcomeUnknown, MintUnavailable, TokenError
from routstr.cashu.identity import holder_mark, holder_matches, token_identity
from routstr.cashu.nut00 import Proof
from routstr.cashu.nut01 import Keyset
from routstr.cashu.nut02 import fee_for, fee_table, split_amount
from routstr.cashu.nut12 import verify_dleq_proof
from routstr.cashu.outputs import prepare_outputs
from routstr.cashu.tokens import Token, decode_token, resolve_short_keyset_ids
from routstr.core import failpoints
from routstr.core.errors import ApiError, InvalidRequest, ServiceUnavailable
from routstr.core.money import UNIT_MSAT, unit_to_msat
from routstr.core.swap_kinds import Owner, SwapKind, SwapState
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.convert import convert, foreign_inputs
from routstr.wallet.mints import MintRegistry
from routstr.wallet.offload import crypto
from routstr.wallet.redeem_gate import RedeemGate
from routstr.wallet.swaps import (
    Operation,
    SwapOutcome,
    complete_swap,
    output_record,
    recover_from_mint,
    swap_outcome,
)

# How long a request waits for another request (maybe in another process) redeeming the same token.
REDEEM_WAIT_S = 30.0
KEYSET_REFRESH_S = 60.0


class TokenAlreadySpent(InvalidRequest):
    code = "token_already_spent"


class TokenInvalid(InvalidRequest):
    code = "invalid_token"


class MintNotAccepted(InvalidRequest):
    code = "mint_not_accepted"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a redeemed token's value goes: an existing key, or a key created with this hash."""

    key_id: int | None = None
    new_key_hash: str | None = None
    new_key_kind: str = "sk"


@dataclass(frozen=True, slots=True)
class Redeemed:
    key_id: int
    amount_msat: int
    mint_url: str
    unit: str
    fresh: bool  # False when the token had been redeemed before (idempotent replay)


def parse_token(value: str, mints: MintRegistry) -> Token:
    """Decode a token and check it is one the node takes (trusted mint, a unit it can price)."""
    try:
        token = decode_token(value)
    except TokenError as e:
        raise TokenInvalid(f"Invalid Cashu token: {e}") from None
    if not token.proofs:
        raise TokenInvalid("Invalid Cashu token: it holds no proofs")
    if token.unit not in UNIT_MSAT:
        raise TokenInvalid(f"Unsupported token unit {token.unit!r}; this node takes sat or msat tokens")
    if not mints.accepts(token.mint) or (not mints.is_trusted(token.mint) and token.unit != "sat"):
        raise MintNotAccepted(
            f"Tokens from mint {token.mint} are not accepted by this node",
            details={"mint": token.mint, "accepted_mints": list(mints.urls)},
        )
    return token


class Redeemer:
    """Turns tokens into credit. One per node; holds the in-process wait list for duplicates.

    ``gate`` counts refused redemptions per client address: the HTTP entry points wrap each
    redemption in ``gate.attempt(address)`` (the redeemer itself never sees a request).
    """

    def __init__(
        self, db: Database, mints: MintRegistry, secret: bytes, gate: RedeemGate | None = None
    ) -> None:
        self.db = db
        self.mints = mints
        self.secret = secret
        self.gate = gate if gate is not None else RedeemGate()
        # (identity, holder mark, target): only a presenter of the same token shares a result
        self._inflight: dict[tuple[str, str | None, Target], asyncio.Future[Redeemed]] = {}
        self._refreshed: dict[str, float] = {}  # mint -> when its keyset list was last refetched

    async def redeem(self, token: Token, target: Target) -> Redeemed:
        """Credit ``token`` to ``target`` once; a replay for the same target returns the first result."""
        th = token_identity(self.secret, token)
        mark = holder_mark(self.secret, token)
        slot = (th, mark, target)
        waiting = self._inflight.get(slot)
        if waiting is not None:
            r = await asyncio.wait_for(asyncio.shield(waiting), REDEEM_WAIT_S)
            return Redeemed(r.key_id, r.amount_msat, r.mint_url, r.unit, fresh=False)
        fut: asyncio.Future[Redeemed] = asyncio.get_running_loop().create_future()
        self._inflight[slot] = fut
        try:
            result = await self._redeem(token, th, mark, target)
            fut.set_result(result)
            return result
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[slot]

    async def _redeem(self, token: Token, th: str, mark: str | None, target: Target) -> Redeemed:
        if not self.mints.is_trusted(token.mint):
            return await self._convert(token, th, mark, target)
        proofs, fees = await self.inputs_and_fee(token)
        amount = sum(p.amount for p in proofs) - fees
        if amount <= 0:
            raise TokenInvalid(
                f"Token is worth {token.amount} {token.unit}, less than the mint's fee of {fees}"
            )
        active = await self.mints.active_keyset(token.mint, token.unit)
        amounts = split_amount(amount)
        prepared = await crypto(len(amounts), prepare_outputs, amounts, active.id)
        swap_id = uuid.uuid4().hex

        try:
            async with self.db.write() as conn:
                existing = await wallet_store.swap_by_token_hash(conn, th)
                if existing is None:
                    await self._check_exposure(conn, token.mint, token.unit, amount)
                    key_id = target.key_id
                    if key_id is None:
                        assert target.new_key_hash is not None
                        key_id = await accounts.create_key(
                            conn, target.new_key_hash, target.new_key_kind, token.mint, token.unit
                        )
                    await wallet_store.insert_swap(
                        conn,
                        swap_id=swap_id,
                        kind=SwapKind.REDEEM,
                        mint_url=token.mint,
                        unit=token.unit,
                        key_id=key_id,
                        token_hash=th,
                        holder_mark=mark,
                        inputs=[p.to_input_dict() for p in proofs],
                        outputs=[output_record(o, Owner.NODE) for o in prepared],
                        user_amount=amount,  # in flight until done: counted against the exposure cap
                    )
        except IntegrityError:
            existing = None  # another process recorded it between our read and insert
            async with self.db.read() as conn:
                existing = await wallet_store.swap_by_token_hash(conn, th)
            if existing is None:
                raise
        if existing is not None:
            return await self._await_other(th, mark, target)

        with self.mints.in_flight.executing(swap_id):
            try:
                sigs = await self.mints.client(token.mint).swap(
                    proofs, [o.to_blinded_message() for o in prepared]
                )
            except MintError as e:  # refused (forged or spent proofs): no row is kept of it
                await self._abandon(swap_id, forget=True)
                if e.is_already_spent:
                    raise TokenAlreadySpent("This Cashu token has already been spent") from None
                raise TokenInvalid(
                    f"The mint rejected the token: {e.detail}", details={"mint_code": e.code}
                ) from None
            except MintOutcomeUnknown as e:  # an error answer that does not say whether it swapped
                return await self._settle_unknown(swap_id, token, proofs, e)
            except MintUnavailable as e:
                if not e.maybe_processed:
                    await self._abandon(swap_id)
                # else: left pending; recovery settles it from the mint's records (NUT-09/NUT-07)
                raise _no_answer(token.mint) from None
            self.mints.mark(token.mint, True)
            failpoints.hit("redeem.after_swap")  # the mint has signed; nothing of it is stored yet
            outcome = await complete_swap(self.db, self.mints, swap_id, sigs)
            return self._redeemed(outcome, token, fresh=True)

    async def _settle_unknown(
        self, swap_id: str, token: Token, proofs: list[Proof], e: MintOutcomeUnknown
    ) -> Redeemed:
        """The mint answered the swap with an error but is done with it (Nutshell's code 0: a crafted
        proof, e.g. a C that is no point, gets it before anything is spent; a failure after the
        commit gets it too), so its records say now what happened (NUT-07): inputs all unspent, it
        refused the token; any spent, the outputs are recovered (NUT-09) and credited; pending or no
        answer, the swap stays pending for recovery."""
        client = self.mints.client(token.mint)
        try:
            states = set((await client.check_state(await crypto(len(proofs), _ys, proofs))).values())
        except CashuError:
            states = {"PENDING"}
        if states == {"UNSPENT"}:
            await self._abandon(swap_id, forget=True)
            raise TokenInvalid(f"The mint rejected the token: {e.detail}", details={"mint_code": e.code})
        if "SPENT" in states:
            async with self.db.read() as conn:
                swap = await wallet_store.swap_by_id(conn, swap_id)
            state = await recover_redeem(self.db, self.mints, swap) if swap is not None else None
            if state == SwapState.DONE:
                return self._redeemed(await swap_outcome(self.db, swap_id), token, fresh=True)
            if state == SwapState.FAILED:  # spent, but not by this swap: undone as such
                raise TokenAlreadySpent("This Cashu token has already been spent")
        raise _no_answer(token.mint)

    async def _convert(self, token: Token, th: str, mark: str | None, target: Target) -> Redeemed:
        """A foreign mint's token: melted there and minted at the primary (``wallet/convert.py``)."""
        async with self.db.read() as conn:
            existing = await wallet_store.swap_by_token_hash(conn, th)
        if existing is not None:
            return await self._await_other(th, mark, target)
        new_key = (target.new_key_hash or "", target.new_key_kind)
        try:
            outcome = await convert(self.db, self.mints, token, (th, mark), target.key_id, new_key)
        except IntegrityError:  # another process recorded it between our read and insert
            return await self._await_other(th, mark, target)
        if outcome.key_id is None:
            raise ApiError("conversion finished without a key")
        return Redeemed(outcome.key_id, outcome.credited_msat, self.mints.primary, "sat", fresh=True)

    async def inputs_and_fee(self, token: Token) -> tuple[list[Proof], int]:
        """The token's proofs with full keyset ids, and the mint's input fee for spending them.

        Proofs that carry a DLEQ proof (NUT-12) must pass it: a mint signing with a key other than
        the one it publishes could later refuse or trace them.

        A keyset the cached list does not know may be new at the mint: the list is fetched once more
        (at most once a minute per mint, so bad tokens cannot make us hammer it) before the token is
        called invalid.
        """
        if not self.mints.is_trusted(token.mint):
            return await foreign_inputs(self.mints, token)
        self.mints.require_up(token.mint)
        client = self.mints.client(token.mint)
        for attempt in (1, 2):
            try:
                keysets = await (client.keysets() if attempt == 1 else client.refresh())
                proofs: list[Proof] = resolve_short_keyset_ids(token.proofs, [k.id for k in keysets])
                await self._check_dleq(token.mint, proofs)
                return proofs, fee_for(proofs, fee_table(keysets))
            except (TokenError, ValueError) as e:
                now = asyncio.get_running_loop().time()
                if (
                    attempt == 2
                    or now - self._refreshed.get(token.mint, -KEYSET_REFRESH_S) < KEYSET_REFRESH_S
                ):
                    raise TokenInvalid(f"Invalid Cashu token: {e}") from None
                self._refreshed[token.mint] = now
            except MintUnavailable as e:
                raise ServiceUnavailable(
                    f"Mint {token.mint} is unavailable: {e}", code="mint_unavailable"
                ) from None
        raise AssertionError("unreachable")

    async def _check_exposure(self, conn: AsyncConnection, mint: str, unit: str, amount: int) -> None:
        """Refuse a token that would take the node's holdings at its mint past the operator's limit,
        counting what is held there and what other redemptions are bringing in right now."""
        limit = self.mints.max_exposure_msat
        if not limit:
            return
        await wallet_store.lock_mint(conn, mint)  # concurrent redemptions, also in other processes
        held = 0
        for u in UNIT_MSAT:
            held += unit_to_msat(await wallet_store.exposure_units(conn, mint, u), u)
        if held + unit_to_msat(amount, unit) > limit:
            raise ServiceUnavailable(
                f"This node already holds as much eCash of mint {mint} as it accepts; your token was "
                "not used: pay with a token of another mint this node lists, or try later",
                code="mint_exposure_limit",
                details={"mint": mint, "accepted_mints": list(self.mints.urls)},
            )

    async def _check_dleq(self, mint: str, proofs: list[Proof]) -> None:
        carrying = [p for p in proofs if p.dleq is not None and p.dleq.r is not None]
        keysets: dict[str, Keyset] = {}
        for kid in dict.fromkeys(p.id for p in carrying):
            try:
                keysets[kid] = await self.mints.keyset(mint, kid)
            except MintUnavailable as e:
                raise ServiceUnavailable(f"Mint {mint} is unavailable: {e}") from None
        checks = [(p, keysets[p.id]) for p in carrying]
        if not await crypto(len(checks), _all_verify, checks):
            raise TokenInvalid(
                "Invalid Cashu token: a proof's DLEQ proof (NUT-12) does not verify "
                "against the mint's published key"
            )

    async def _await_other(self, th: str, mark: str | None, target: Target) -> Redeemed:
        """The token is (being) redeemed by another request: wait for it, and share the result only
        with a request for the same key from a holder of the same token (a spent token, or its
        secrets and signatures without the holder's blinding factors, must not open a balance)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + REDEEM_WAIT_S
        while True:
            async with self.db.read() as conn:
                s = await wallet_store.swap_by_token_hash(conn, th)
                same = (
                    s is not None
                    and holder_matches(s.holder_mark, mark)
                    and await self._is_target(conn, s.key_id, target)
                )
            if s is None or s.state == SwapState.FAILED or not same:
                raise TokenAlreadySpent("This Cashu token has already been spent")
            if s.state == SwapState.DONE and s.key_id is not None:
                credited = sum(o["amount"] for o in s.outputs if o.get("owner") == Owner.NODE)
                return Redeemed(s.key_id, unit_to_msat(credited, s.unit), s.mint_url, s.unit, fresh=False)
            if loop.time() > deadline:
                raise ServiceUnavailable("This token is still being redeemed; try again shortly")
            await asyncio.sleep(0.05)

    @staticmethod
    async def _is_target(conn: AsyncConnection, key_id: int | None, target: Target) -> bool:
        if key_id is None:
            return False
        if target.key_id is not None:
            return key_id == target.key_id
        row = await accounts.key_by_id(conn, key_id)
        if row is None or row.kind != target.new_key_kind:
            return False
        return await accounts.key_hash_of(conn, key_id) == target.new_key_hash

    async def _abandon(self, swap_id: str, *, forget: bool = False) -> None:
        """The swap certainly did not happen: free the token so it can be tried again. ``forget``:
        the mint refused it, and a row for every forged token would be a free way to fill the disk."""
        async with self.db.write() as conn:
            await wallet_store.abandon_redeem(conn, swap_id, forget=forget)

    @staticmethod
    def _redeemed(outcome: SwapOutcome, token: Token, fresh: bool) -> Redeemed:
        if outcome.key_id is None:
            raise ApiError("redeem finished without a key")
        return Redeemed(outcome.key_id, outcome.credited_msat, token.mint, token.unit, fresh=fresh)


def _no_answer(mint: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Mint {mint} did not answer; if it took the token, it is credited to this key once the mint "
        "answers again: retry shortly",
        code="mint_unavailable",
    )


def _ys(proofs: list[Proof]) -> list[str]:
    return [p.Y for p in proofs]


def _all_verify(checks: list[tuple[Proof, Keyset]]) -> bool:
    """Every proof's DLEQ against its keyset's key for its amount; stops at the first failure, so
    forged ones cost one check."""
    return all(p.amount in ks.keys and verify_dleq_proof(p, ks.public_key(p.amount)) for p, ks in checks)


async def undo_redeem(db: Database, swap_id: str, *, inputs_spent: bool, error: str) -> None:
    """A redemption that did not happen: the token is the user's again (``abandon_redeem``)."""
    async with db.write() as conn:
        await wallet_store.abandon_redeem(conn, swap_id)


async def recover_redeem(db: Database, mints: MintRegistry, swap: wallet_store.SwapRow) -> SwapState:
    return await recover_from_mint(db, mints, swap, undo_redeem)


OPERATION = Operation(SwapKind.REDEEM, recover_redeem, undo_redeem)
