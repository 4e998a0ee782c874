"""Paying one request with the Cashu token in its ``X-Cashu`` header (NUT-24), change included.

The token is redeemed into a one-shot balance (an ``xcashu`` key known by the token's identity);
the request runs on it like on any key; whatever is left afterwards goes back to the user as a
token of the same mint and unit, in the ``X-Cashu`` response header (or, for a stream, in its final
event). If the request fails after the token was redeemed, all of it comes back the same way. A
change the user never received stays on that key: ``POST /v1/balance/refund`` with the original
``X-Cashu`` hands it out (again).

With no key and no token, the answer carries a NUT-18 payment request in ``X-Cashu`` so that a
NUT-24 wallet can pay without knowing anything of Routstr.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from routstr.cashu.errors import CashuError
from routstr.cashu.identity import holder_mark, holder_matches, token_identity
from routstr.cashu.nut18 import PaymentRequest, encode_payment_request
from routstr.core.errors import ApiError, InsufficientBalance, InvalidRequest, ServiceUnavailable
from routstr.core.money import UNIT_MSAT, ceil_div, whole_unit_charge
from routstr.storage import accounts, wallet_store
from routstr.storage.db import Database
from routstr.wallet.mints import MintRegistry
from routstr.wallet.redeem import Redeemer, Target, TokenAlreadySpent, parse_token
from routstr.wallet.refund import Refund, Refunder

log = logging.getLogger(__name__)

HEADER = "X-Cashu"
# The spec's prose also names the change header X-Cashu-Refund; both carry the same token.
REFUND_HEADER = "X-Cashu-Refund"
KEY_KIND = "xcashu"


@dataclass(slots=True)
class OneShot:
    """A request paid by a token: the key its value went to, and the unit its change is made in."""

    key_id: int
    unit: str
    change: Refund | None = None
    change_pending: bool = False  # the mint did not take the change swap: it waits on the key
    closed: bool = False

    def charge(self, cost_msat: int) -> int:
        """Sat tokens are charged whole sats, rounded up (never below the price), so the change is exact."""
        return whole_unit_charge(cost_msat, UNIT_MSAT[self.unit])

    def headers(self) -> dict[str, str]:
        if self.change is not None:
            return {HEADER: self.change.token, REFUND_HEADER: self.change.token}
        if self.change_pending:
            return {"X-Cashu-Change": "pending; POST /v1/balance/refund with the same X-Cashu header"}
        return {}

    def cost_fields(self) -> dict[str, Any]:
        """What ``usage.cost`` says of the change (a stream has no headers left to carry it)."""
        if self.change is None:
            return {"change": 0, "change_unit": self.unit, "x_cashu": None}
        return {"change": self.change.amount, "change_unit": self.unit, "x_cashu": self.change.token}


def xcashu_value(headers: Mapping[str, str]) -> str | None:
    value = headers.get(HEADER)
    return value.strip() if value and value.strip() else None


class XCashu:
    def __init__(
        self, db: Database, mints: MintRegistry, redeemer: Redeemer, refunder: Refunder, secret: bytes
    ) -> None:
        self.db = db
        self.mints = mints
        self.redeemer = redeemer
        self.refunder = refunder
        self.secret = secret

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

        A wrong mint or unit is a 400 (NUT-24). A token seen before is refused: its value went to
        the request that first brought it, and its change is retrievable with it. A refusal counts
        against the client's address ``remote`` (the redeemer's gate; None: not counted).
        """
        token = parse_token(value, self.mints)
        per_unit = UNIT_MSAT[token.unit]
        async with self.redeemer.gate.attempt(remote):
            _, fee = await self.redeemer.inputs_and_fee(token)
            net_msat = (token.amount - fee) * per_unit
            if net_msat < whole_unit_charge(least_msat, per_unit):
                short = InsufficientBalance(max(net_msat, 0), least_msat)
                raise self.challenge(short, most_msat + fee * per_unit)
            khash = token_identity(self.secret, token)
            target = Target(new_key_hash=khash, new_key_kind=KEY_KIND)
            redeemed = await self.redeemer.redeem(token, target)
        if not redeemed.fresh:
            raise TokenAlreadySpent(
                "This Cashu token has already paid for a request; its change is returned by "
                "POST /v1/balance/refund with the same X-Cashu header"
            )
        return OneShot(redeemed.key_id, token.unit)

    async def close(self, shot: OneShot) -> OneShot:
        """Pay the rest of the one-shot balance back (all of it if the request failed), once."""
        if shot.closed:
            return shot
        shot.closed = True
        try:
            shot.change = await self.refunder.change(shot.key_id)
        except (ApiError, CashuError) as e:  # mint down or refusing: the change stays claimable on the key
            # the answer was paid for and is delivered all the same, marked "change pending"
            log.warning("X-Cashu change for key %d not paid out now: %s", shot.key_id, type(e).__name__)
            shot.change_pending = True
        return shot

    async def retrieve(self, value: str) -> Refund:
        """The change of the request a token paid for: paid out now if still held, else handed out again."""
        token = parse_token(value, self.mints)
        th = token_identity(self.secret, token)
        async with self.db.read() as conn:
            key = await accounts.key_by_hash(conn, th)
            paid = await wallet_store.swap_by_token_hash(conn, th)
        held = paid is not None and holder_matches(paid.holder_mark, holder_mark(self.secret, token))
        if key is None or key.kind != KEY_KIND or not held:
            raise InvalidRequest("This token has not paid for any request on this node", code="unknown_token")
        refund = await self.refunder.change(key.id)
        if refund is not None:
            return refund
        async with self.db.read() as conn:
            swap = await wallet_store.latest_refund(conn, key.id)
        if swap is None or swap.result_token is None:
            raise ServiceUnavailable("This token's change is not paid out yet; try again shortly")
        return Refund(swap.result_token, swap.user_amount, swap.unit, swap.mint_url, 0)
