"""Webhook endpoints: a key holder registers, lists and deletes webhooks for their own key.

Authenticated like ``/v1/balance/info`` (the key in ``Authorization: Bearer`` or ``x-api-key``).
The secret is sealed before it is stored and never answered back.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from routstr.api.responses import json_response
from routstr.billing.body import read_json_body
from routstr.core.errors import Forbidden, InvalidRequest, NotFound
from routstr.core.sealed import seal
from routstr.net.client_address import client_address
from routstr.node import NODE, Node
from routstr.storage import child_store
from routstr.storage import webhook_store as store
from routstr.storage.accounts import now_ms
from routstr.webhooks.delivery import SECRET_PURPOSE
from routstr.webhooks.destinations import DestinationError, parse_url, resolve
from routstr.webhooks.payload import new_webhook_id
from routstr.webhooks.registration import parse_registration

MAX_BODY_BYTES = 16 * 1024  # a URL, a secret and a few fields


def _client(request: web.Request) -> str | None:
    """The client's address (through a trusted proxy's X-Forwarded-For), for per-address limits."""
    return client_address(request, request.app[NODE].settings.trusted_proxies)


def _public(w: store.WebhookRow) -> dict[str, Any]:
    return {
        "id": w.id,
        "url": w.url,
        "events": list(w.events),
        "low_balance_msat": w.low_balance_msat,
        "created_at": w.created_at // 1000,
    }


async def _key_id(node: Node, request: web.Request) -> int:
    return await node.auth.key_id(node.auth.require_bearer(request.headers), _client(request))


async def create_webhook(request: web.Request) -> web.Response:
    node = request.app[NODE]
    s = node.settings
    key_id = await _key_id(node, request)
    async with node.db.read() as conn:
        child = await child_store.is_child(conn, key_id)
    if child:  # its own row holds nothing (it spends its parent's): balance.low would fire at once
        raise Forbidden(
            "Register webhooks with the parent key, whose balance a child key spends",
            code="child_key_not_allowed",
        )
    _, body = await read_json_body(request, min(MAX_BODY_BYTES, s.max_body_bytes))
    reg = parse_registration(body)
    try:
        await resolve(parse_url(reg.url, s.webhook_allow_http), s.webhook_allow_private)
    except DestinationError as e:
        raise InvalidRequest(e.message, code=e.code, details={"param": "url"}) from None
    sealed = seal(node.auth.secret, SECRET_PURPOSE, reg.secret)
    async with node.db.write() as conn:
        if await store.count_for_key(conn, key_id) >= s.webhook_max_per_key:
            raise InvalidRequest(
                f"This key has {s.webhook_max_per_key} webhooks, the most it may have; delete one first",
                code="too_many_webhooks",
                details={"max": s.webhook_max_per_key},
            )
        row = await store.insert_webhook(
            conn, new_webhook_id(), key_id, reg.url, reg.events, sealed, reg.low_balance_msat, now_ms()
        )
    return json_response(_public(row), status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    node = request.app[NODE]
    key_id = await _key_id(node, request)
    async with node.db.read() as conn:
        rows = await store.webhooks_of_key(conn, key_id)
    return json_response({"data": [_public(w) for w in rows]})


# what new_webhook_id makes: anything else names no webhook, and is not sent to the database (where
# a NUL in it would be an error, not a miss)
_WEBHOOK_ID = re.compile(r"wh_[0-9a-f]{1,64}")


async def delete_webhook(request: web.Request) -> web.Response:
    node = request.app[NODE]
    key_id = await _key_id(node, request)
    webhook_id = request.match_info["webhook_id"]
    deleted = False
    if _WEBHOOK_ID.fullmatch(webhook_id):
        async with node.db.write() as conn:
            deleted = await store.delete_webhook(conn, webhook_id, key_id)
    if not deleted:  # also when it is another key's: its existence is not told
        raise NotFound("This key has no webhook with that id", code="webhook_not_found")
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/webhooks", create_webhook)
    app.router.add_get("/v1/webhooks", list_webhooks)
    app.router.add_delete("/v1/webhooks/{webhook_id}", delete_webhook)
