"""A key's history of deposits, refunds and payouts, and giving its balance to the operator.

Served under ``/v1/balance/`` and ``/v1/wallet/`` (routes in ``balance.py``). Query parameters and
bodies are checked before the key is looked up: a Cashu token used as the key is redeemed on first
sight, and a malformed request must not cost it.
"""

from __future__ import annotations

import re

from aiohttp import web

from routstr.api.responses import json_response
from routstr.billing.body import read_json_body
from routstr.core.errors import Forbidden, InsufficientBalance, InvalidRequest, NotFound
from routstr.net.client_address import client_address
from routstr.node import NODE, Node
from routstr.storage import accounts, child_store, donations, history_store

PAGE_DEFAULT, PAGE_MAX = 50, 200
_ENTRY_ID = re.compile(r"[0-9a-f]{1,64}")
_MSAT_MAX = 2**63 - 1  # a BIGINT


def client_of(request: web.Request) -> str | None:
    """The client's address (through a trusted proxy's X-Forwarded-For), for per-address limits."""
    return client_address(request, request.app[NODE].settings.trusted_proxies)


async def requesting_key(node: Node, request: web.Request) -> accounts.KeyRow:
    """The key of the request's bearer (an sk- key, its alias, or a Cashu token, redeemed once)."""
    key_id = await node.auth.key_id(node.auth.require_bearer(request.headers), client_of(request))
    async with node.db.read() as conn:
        key = await accounts.key_by_id(conn, key_id)
    if key is None:
        raise NotFound("Unknown key")
    return key


async def owning_key(node: Node, request: web.Request) -> accounts.KeyRow:
    """``requesting_key`` for what takes money out of a balance (refund, payout, donate): a child
    key spends its parent's balance within a limit, but never takes it away (403)."""
    key = await requesting_key(node, request)
    async with node.db.read() as conn:
        child = await child_store.is_child(conn, key.id)
    if child:
        raise Forbidden(
            "A child key spends its parent's balance but cannot refund, pay out or donate it; "
            "use the parent key",
            code="child_key_not_allowed",
        )
    return key


def _limit(raw: str | None) -> int:
    if raw is None:
        return PAGE_DEFAULT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= PAGE_MAX:
        raise InvalidRequest(f"limit must be an integer from 1 to {PAGE_MAX}", details={"param": "limit"})
    return int(raw)


async def history(request: web.Request) -> web.Response:
    """``{"transactions": [...], "next_before": id | null}``, newest first; ``before=<next_before>``
    continues where a page ended."""
    node = request.app[NODE]
    limit = _limit(request.query.get("limit"))
    before = request.query.get("before")
    if before is not None and not _ENTRY_ID.fullmatch(before):
        raise InvalidRequest(
            "before must be the id of an entry of an earlier page", details={"param": "before"}
        )
    key = await requesting_key(node, request)
    async with node.db.read() as conn:
        cursor = None
        if before is not None:
            cursor = await history_store.cursor_of(conn, key.id, before)
            if cursor is None:
                raise InvalidRequest(
                    "before must be the id of an entry of this key's history", details={"param": "before"}
                )
        entries = await history_store.history(conn, key.id, limit, cursor)
    return json_response(
        {
            "transactions": [e.as_dict() for e in entries],
            "next_before": entries[-1].id if len(entries) == limit else None,
        }
    )


async def _donation_amount(request: web.Request, node: Node) -> int | None:
    """``{"amount_msat": N}`` from the body; None (no body or no field): the whole balance."""
    if not request.can_read_body:
        return None
    _, body = await read_json_body(request, node.settings.max_body_bytes)
    raw = body.get("amount_msat")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= _MSAT_MAX:
        raise InvalidRequest(
            "amount_msat must be a positive integer (msat); leave it out to donate the whole balance",
            details={"param": "amount_msat"},
        )
    return raw


async def donate(request: web.Request) -> web.Response:
    """Give the key's balance (or ``amount_msat`` of it) to the node's operator: it becomes earnings."""
    node = request.app[NODE]
    amount = await _donation_amount(request, node)
    key = await owning_key(node, request)
    async with node.db.write() as conn:
        done = await donations.donate(conn, key.id, amount)
    if done is None:
        async with node.db.read() as conn:
            now = await accounts.key_by_id(conn, key.id)
        available = now.balance_msat if now else 0
        if amount is None:
            raise InvalidRequest(
                "Nothing to donate: the balance is empty",
                code="nothing_to_donate",
                details={"balance_msat": available},
            )
        raise InsufficientBalance(available, amount)
    donated, balance = done
    return json_response({"donated_msat": donated, "balance": balance, "unit": "msat"})
