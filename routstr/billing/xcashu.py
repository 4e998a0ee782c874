"""Paying one request with the Cashu token in its ``X-Cashu`` header (NUT-24), change included.

The token is redeemed into a one-shot balance (an ``xcashu`` key known by the token's identity);
the request runs on it like on any key; whatever is left afterwards goes back to the user as a
token of the same mint and unit, in the ``X-Cashu`` response header (or, for a stream, in its final
event). A stream pays its change in two parts: what the request cannot cost (the token's value
beyond the reservation) in the ``X-Cashu`` header when it starts (made while the upstream prepares
its answer), the rest at the end. If the request fails after the token was redeemed, all of it
comes back in the error's ``X-Cashu``. Change the user never received stays claimable:
``POST /v1/balance/refund`` with the original ``X-Cashu`` hands out all of it not yet redeemed.

With no key and no token, the answer carries a NUT-18 payment request in ``X-Cashu`` so that a
NUT-24 wallet can pay without knowing anything of Routstr; a token too small for the request is a
400 (NUT-24) with the amount needed in the error's details. Any other ``X-Cashu`` on an error is a
token: the presented token's value coming back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from routstr.cashu.errors import CashuError
from routstr.cashu.identity import holder_mark, holder_matches, token_identity
from routstr.cashu.nut18 import PaymentRequest, encode_payment_request
from routstr.core.errors import ApiError, InvalidRequest, ServiceUnavailable
from routstr.core.money import UNIT_MSAT, ceil_div, whole_unit_charge
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.change_parts import join, unclaimed
from routstr.wallet.mints import MintRegistry
from routstr.wallet.redeem import Redeemer, Target, TokenAlreadySpent, parse_token
from routstr.wallet.refund import NothingToRefund, Refund, Refunder

log = logging.getLogger(__name__)

HEADER = "X-Cashu"
# The spec's prose also names the change header X-Cashu-Refund; both carry the same token.
REFUND_HEADER = "X-Cashu-Refund"
KEY_KIND = "xcashu"
# How long a stream's headers may wait for the early change once the upstream's first bytes are in
# hand (before that they wait for free: the client would get no content sooner). Past it the stream
# starts without it, and that part comes with the rest at the end.
CHANGE_WAIT_S = 0.1


@dataclass(slots=True)
class OneShot:
    """A request paid by a token: the key its value went to, and the unit its change is made in."""

    key_id: int
    unit: str
    change: Refund | None = None
    change_pending: bool = False  # the mint did not take the change swap: it waits on the key
    closed: bool = False
    early: asyncio.Task[Refund | None] | None = None  # a stream's change beyond its reservation
    early_sent: Refund | None = None  # ... when it went out in the stream's headers

    def charge(self, cost_msat: int) -> int:
        """Sat tokens are charged whole sats, rounded up (never below the price), so the change is exact."""
        return whole_unit_charge(cost_msat, UNIT_MSAT[self.unit])

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.change is not None:
            out = {HEADER: self.change.token, REFUND_HEADER: self.change.token}
        if self.change_pending:
            out["X-Cashu-Change"] = "pending; POST /v1/balance/refund with the same X-Cashu header"
        return out

    def cost_fields(self) -> dict[str, Any]:
        """What ``usage.cost`` says of the change (a stream has no headers left to carry it)."""
        early = self.early_sent.amount if self.early_sent is not None else 0
        out: dict[str, Any] = {"change": 0, "change_unit": self.unit, "x_cashu": None, "early_change": early}
        if self.change is not None:
            out.update(change=self.change.amount, x_cashu=self.change.token)
        if self.change_pending:
            out["change_pending"] = True
        return out


def too_small(available_msat: int, required_msat: int, unit: str) -> InvalidRequest:
    """NUT-24: an insufficient token is a 400; the details say how much to send (it was not used, or
    comes back whole in ``X-Cashu``)."""
    per_unit = UNIT_MSAT[unit]
    amount = ceil_div(required_msat, per_unit)
    return InvalidRequest(
        f"This Cashu token is worth {available_msat // per_unit} {unit} to this request, which needs "
        f"up to {amount} {unit}: send a token of at least that",
        details={
            "required": required_msat,
            "available": available_msat,
            "unit": "msat",
            "amount": amount,
            "amount_unit": unit,
        },
        code="token_too_small",
    )


def xcashu_value(headers: Mapping[str, str]) -> str | None:
    value = headers.get(HEADER)
    return value.strip() if value and value.strip() else None


class XCashu:
    def __init__(
        self, db: Database, mints: MintRegistry, redeemer: Redeemer, refunder: Refunder, secret: bytes
    ) -> None:
        self.db = db
        self.mints = mints
        self.change_wait_s = CHANGE_WAIT_S  # a stream's headers wait this long at most for early change
        self.redeemer = redeemer
        # the change is paid by its own refunder over the same wallet: one new token per part, as
        # made; parts not redeemed yet are handed out again by ``change_parts.unclaimed``
        self.refunder: Refunder = Refunder(refunder.db, refunder.mints, reuse_open=False)
        self.secret = secret
        self._early_tasks: set[asyncio.Task[Refund | None]] = set()  # in flight (the loop holds tasks weakly)

    def payment_request(self, amount_msat: int) -> str:
        """NUT-18 request for ``amount_msat``: in sats (rounded up), from any mint the node trusts."""
        return encode_payment_request(
            PaymentRequest(amount=ceil_div(amount_msat, 1000), unit="sat", mints=self.mints.urls)
        )

    def challenge(self, err: ApiError, amount_msat: int) -> ApiError:
        err.headers[HEADER] = self.payment_request(amount_msat)
        return err

    async def open(self, value: str, least_msat: int, most_msat: int, remote: str | None = None) -> OneShot:
        """Redeem the token for this request, unless it is too small for it (then it is untouched).

        A wrong mint or unit, or too small an amount, is a 400 (NUT-24). A token seen before is
        refused: its value went to the request that first brought it, and its change is retrievable
        with it. A refusal counts against the client's address ``remote`` (the redeemer's gate; None:
        not counted).
        """
        token = parse_token(value, self.mints)
        per_unit = UNIT_MSAT[token.unit]
        async with self.redeemer.gate.attempt(remote):
            _, fee = await self.redeemer.inputs_and_fee(token)
            net_msat = (token.amount - fee) * per_unit
            if net_msat < whole_unit_charge(least_msat, per_unit):
                needed = whole_unit_charge(most_msat, per_unit) + fee * per_unit
                raise too_small(max(net_msat, 0), needed, token.unit)
            khash = token_identity(self.secret, token)
            target = Target(new_key_hash=khash, new_key_kind=KEY_KIND)
            redeemed = await self.redeemer.redeem(token, target)
        if not redeemed.fresh:
            raise TokenAlreadySpent(
                "This Cashu token has already paid for a request; its change is returned by "
                "POST /v1/balance/refund with the same X-Cashu header"
            )
        return OneShot(redeemed.key_id, token.unit)

    def start_early(self, shot: OneShot) -> None:
        """Pay back now, while the upstream prepares its answer, what the request cannot cost: the key
        holds the token's value minus the reservation, and the refund debits it before its token
        exists (``wallet.refund``; a crash leaves a recorded swap that recovery finishes)."""
        task = asyncio.create_task(self._early(shot.key_id))
        self._early_tasks.add(task)
        task.add_done_callback(self._early_tasks.discard)
        shot.early = task

    async def _early(self, key_id: int) -> Refund | None:
        try:
            return await self.refunder.change(key_id)
        except (ApiError, CashuError) as e:  # the mint is down or slow: this part comes at the end
            log.info("X-Cashu early change for key %d not made: %s", key_id, type(e).__name__)
        except Exception:  # whatever it was, the refund left its swap recorded or the balance whole
            log.exception("X-Cashu early change for key %d failed", key_id)
        return None

    def early_headers(self, shot: OneShot) -> dict[str, str]:
        """The early change for a stream's headers, if it is ready (then it counts as handed out)."""
        task = shot.early
        early = task.result() if task is not None and task.done() and not task.cancelled() else None
        if early is None:
            return {}
        shot.early_sent = early
        return {HEADER: early.token, REFUND_HEADER: early.token}

    async def close(self, shot: OneShot) -> OneShot:
        """Pay the rest of the one-shot balance back (all of it if the request failed), once; an early
        change that did not go out with the stream's headers is joined to it."""
        if shot.closed:
            return shot
        shot.closed = True
        early = await _result(shot.early)
        unsent = [early] if early is not None and shot.early_sent is None else []
        rest = None
        try:
            rest = await self.refunder.change(shot.key_id)
        except (ApiError, CashuError) as e:  # mint down or refusing: the change stays claimable on the key
            # the answer was paid for and is delivered all the same, marked "change pending"
            log.warning("X-Cashu change for key %d not paid out now: %s", shot.key_id, type(e).__name__)
            shot.change_pending = True
        if shot.early is not None and early is None and not shot.change_pending:
            # the early change failed: if the mint may have made it, it waits for recovery, then retrieval
            async with self.db.read() as conn:
                shot.change_pending = bool(
                    await wallet_store.refund_swaps(conn, shot.key_id, wallet_store.PENDING)
                )
        shot.change = join(unsent + ([rest] if rest is not None else []))
        return shot

    async def retrieve(self, value: str) -> Refund:
        """The change of the request a token paid for: what the key still holds is paid out now, and
        every part of the change not yet redeemed at the mint is handed out (again) as one token."""
        token = parse_token(value, self.mints)
        th = token_identity(self.secret, token)
        async with self.db.read() as conn:
            key = await accounts.key_by_hash(conn, th)
            paid = await wallet_store.swap_by_token_hash(conn, th)
        held = paid is not None and holder_matches(paid.holder_mark, holder_mark(self.secret, token))
        if key is None or key.kind != KEY_KIND or not held:
            raise InvalidRequest("This token has not paid for any request on this node", code="unknown_token")
        now = await self.refunder.change(key.id)
        left = await unclaimed(self.db, self.mints, key.id)
        if left is not None:
            return replace(left, debited_msat=now.debited_msat if now is not None else 0)
        async with self.db.read() as conn:
            swap = await wallet_store.latest_refund(conn, key.id)
        if swap is None or swap.result_token is None:
            raise ServiceUnavailable("This token's change is not paid out yet; try again shortly")
        # all of it was redeemed at the mint: a spent token handed out again would only fail there
        raise NothingToRefund("Nothing to refund: this token's change has been redeemed already")


async def _result(task: asyncio.Task[Refund | None] | None) -> Refund | None:
    """An early change's outcome, waited for without cancelling it if the waiter is cancelled."""
    if task is None:
        return None
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.cancelled():  # the task itself (a shutdown): its swap, if any, is recovered later
            return None
        raise
