"""Child keys: a key holder hands out ``sk-`` keys that spend its balance, each within its own limit.

``POST /v1/balance/child-key`` (authenticated by the parent) makes ``count`` of them with an optional
``balance_limit`` (msat), ``balance_limit_reset`` (daily, weekly, monthly) and ``validity_date`` (unix
seconds); ``POST /v1/balance/child-key/reset {"api_key": child}`` starts a child's period again from 0
spent. Both are served under ``/v1/wallet/`` too. The limits are enforced where the money moves
(``storage/limited_ops.py``); this module only reads requests and answers them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from routstr.api.responses import json_response
from routstr.billing.body import read_json_body
from routstr.core import budgets
from routstr.core.errors import Forbidden, InsufficientBalance, InvalidRequest, NotFound
from routstr.core.keys import SK_PREFIX, key_hash, new_sk_key
from routstr.net.client_address import client_address
from routstr.node import NODE, Node
from routstr.storage import child_store
from routstr.storage.accounts import now_ms

PREFIXES = ("/v1/balance", "/v1/wallet")
MAX_BODY_BYTES = 4096  # a few numbers, or one key


async def _caller(node: Node, request: web.Request) -> int:
    """The key of the request's bearer (a Cashu token as the bearer is redeemed once, as elsewhere)."""
    remote = client_address(request, node.settings.trusted_proxies)
    return await node.auth.key_id(node.auth.require_bearer(request.headers), remote)


async def _body(node: Node, request: web.Request) -> dict[str, Any]:
    """The JSON object sent, or {} for an empty body (every field has a default)."""
    if not request.can_read_body or request.content_length == 0:
        return {}
    _, body = await read_json_body(request, min(MAX_BODY_BYTES, node.settings.max_body_bytes))
    return body


async def create_child_keys(request: web.Request) -> web.Response:
    node = request.app[NODE]
    parent_id = await _caller(node, request)
    body = await _body(node, request)
    count = budgets.parse_count(body)
    now = now_ms()
    limits = budgets.parse_limits(body, now)
    keys = [new_sk_key() for _ in range(count)]
    each = node.settings.child_key_cost_msats
    async with node.db.write() as conn:
        made = await child_store.create_children(
            conn, parent_id, [key_hash(node.auth.secret, k) for k in keys], limits, each * count, now
        )
    if made.problem == "no_key":
        raise NotFound("Unknown key")
    if made.problem == "limited":
        raise Forbidden(
            "A child key (or a key with a spending limit) cannot make child keys: use its parent",
            code="child_key_not_allowed",
        )
    if made.problem == "too_many":
        raise InvalidRequest(
            f"A key has at most {child_store.MAX_CHILDREN} child keys; this one has {made.children}",
            code="too_many_child_keys",
            details={"param": "count", "children": made.children, "max": child_store.MAX_CHILDREN},
        )
    if made.problem == "balance":
        raise InsufficientBalance(made.parent_balance, each * count)
    return json_response(
        {
            "api_keys": keys,
            "count": count,
            "cost_msats": each * count,
            "cost_msats_per_key": each,
            "parent_balance": made.parent_balance,
            "balance_limit": limits.limit_msat,
            "balance_limit_reset": limits.period,
            "validity_date": None if limits.valid_until is None else limits.valid_until // 1000,
        }
    )


async def reset_child_key(request: web.Request) -> web.Response:
    """The child's spent counter back to 0 (a new period from now), by its parent."""
    node = request.app[NODE]
    parent_id = await _caller(node, request)
    body = await _body(node, request)
    child = body.get("api_key")
    if not isinstance(child, str) or not child.startswith(SK_PREFIX) or len(child) > 128:
        raise InvalidRequest(
            'Send the child key to reset as {"api_key": "sk-…"}', details={"param": "api_key"}
        )
    now = now_ms()
    async with node.db.write() as conn:
        child_id = await child_store.child_by_hash(conn, parent_id, key_hash(node.auth.secret, child))
        if child_id is None:
            raise NotFound("No child key of this key has that value", code="child_key_not_found")
        await child_store.reset_spent(conn, child_id, now)
        fields = await child_store.limit_fields(conn, child_id, now)
    return json_response({"api_key": child, "reset": True, **(fields or {})})


def add_routes(app: web.Application) -> None:
    for prefix in PREFIXES:
        app.router.add_post(prefix + "/child-key", create_child_keys)
        app.router.add_post(prefix + "/child-key/reset", reset_child_key)
