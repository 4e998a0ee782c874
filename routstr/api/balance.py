"""Balance endpoints: see, create, top up and refund a key's balance; its history; donate it.

Every route is served under ``/v1/balance/`` and, for Routstr's SDK clients (routstrd,
routstr-chat), under ``/v1/wallet/`` too: the same handlers.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from aiohttp import web

from routstr.api import balance_history
from routstr.api.balance_history import client_of, owning_key, requesting_key
from routstr.api.responses import json_response
from routstr.billing.body import read_json_body
from routstr.billing.xcashu import xcashu_value
from routstr.cashu.identity import token_identity
from routstr.core import budgets
from routstr.core.errors import InvalidRequest
from routstr.core.keys import SK_PREFIX, key_hash
from routstr.node import NODE, Node
from routstr.storage import accounts, child_store
from routstr.wallet.redeem import Target, parse_token


def _balance(key: accounts.KeyRow) -> dict[str, Any]:
    return {
        "balance": key.balance_msat,
        "reserved": key.reserved_msat,
        "unit": "msat",
        "mint": key.mint_url,
        "token_unit": key.unit,
        "total_spent": key.total_spent_msat,
        "total_requests": key.total_requests,
        "is_child": False,
        "balance_limit": None,
        "balance_limit_reset": None,
        "validity_date": None,
    }


async def balance_body(node: Node, key: accounts.KeyRow) -> dict[str, Any]:
    """``_balance``, and for a key with a spending limit (a child key) what it may spend: its payer's
    balance capped by the limit's room, its counters and validity (``storage/child_store.py``)."""
    body = _balance(key)
    async with node.db.read() as conn:
        limited = await child_store.limit_fields(conn, key.id, accounts.now_ms())
    if limited is not None:
        body.update(limited)
    return body


# the body fields a token is read from (``initial_balance_token``: Routstr Core's name for create)
TOKEN_FIELDS = ("cashu_token", "token", "initial_balance_token")


async def _token_from(request: web.Request, node: Node) -> str:
    """The token from the JSON body. One in the query string is refused, not redeemed: a URL ends up
    in access logs and proxies' logs, and whoever reads them could spend or replay it."""
    if any(name in request.query for name in TOKEN_FIELDS):
        raise InvalidRequest(
            'Send the Cashu token in a POST body, as {"cashu_token": "cashuB…"}, not in the URL: '
            "URLs are logged. This token was not used; if the URL was logged anywhere, spend it "
            "(send it to yourself) before using it here",
            code="token_in_url",
            details={"param": "cashu_token"},
        )
    token = None
    if request.can_read_body:
        _, body = await read_json_body(request, node.settings.max_body_bytes)
        token = next((body[n] for n in TOKEN_FIELDS if isinstance(body.get(n), str) and body[n]), None)
    if not isinstance(token, str) or not token.strip():
        raise InvalidRequest(
            'Send a Cashu token as {"cashu_token": "cashuB…"}', details={"param": "cashu_token"}
        )
    return token.strip()


# Key-Expiry-Time: unix seconds up to 9999-12-31 (a past time expires the key at once); later is
# milliseconds by mistake or garbage, and past int64 once in ms
EXPIRY_MAX_S = 253_402_300_799
Terms = tuple[str | None, int | None]  # the refund address, the expiry in unix ms


def _payout_terms(request: web.Request) -> Terms:
    """``Refund-LNURL`` and ``Key-Expiry-Time`` as sent, read (and refused: 400) before anything
    is redeemed, so a bad header never costs a token."""
    address = request.headers.get("Refund-LNURL", "").strip() or None
    raw_expiry = request.headers.get("Key-Expiry-Time", "").strip()
    expires_ms = None
    if raw_expiry:
        # ASCII digits only: str.isdigit() also takes other scripts' digits (int() reads them) and
        # superscripts (it does not)
        ok = raw_expiry.isascii() and raw_expiry.isdigit() and len(raw_expiry) <= 12
        if not ok or int(raw_expiry) > EXPIRY_MAX_S:
            raise InvalidRequest(
                f"Key-Expiry-Time must be a unix time in seconds (digits 0-9, at most {EXPIRY_MAX_S})",
                details={"param": "Key-Expiry-Time"},
            )
        expires_ms = int(raw_expiry) * 1000
    return address, expires_ms


async def _remember_terms(node: Node, terms: Terms, key_id: int) -> None:
    """Keep the terms on the key: at expiry what is left is paid to that address."""
    address, expires_ms = terms
    if address or expires_ms is not None:
        async with node.db.write() as conn:
            await accounts.set_payout_terms(conn, key_id, address, expires_ms)


async def balance_info(request: web.Request) -> web.Response:
    """The balance, and ``api_key``: the sk- key of this balance (Routstr's clients keep it)."""
    node = request.app[NODE]
    terms = _payout_terms(request)
    bearer = node.auth.require_bearer(request.headers)
    key = await requesting_key(node, request)
    await _remember_terms(node, terms, key.id)
    api_key = await token_key_alias(node, key.id) if key.kind == "token" else bearer
    return json_response({"api_key": api_key, **await balance_body(node, key)})


def token_key_sk(secret: bytes, identity: str) -> str:
    """The sk- key of a token key's balance: derived from the token's identity (the key's hash), so
    it is the same on every call and in every process; a label apart from ``derived_sk_key``."""
    return SK_PREFIX + hmac.new(secret, b"token-key:" + identity.encode(), hashlib.sha256).hexdigest()[:32]


async def token_key_alias(node: Node, key_id: int) -> str:
    """A token key's sk- key, its hash stored on the key (once) so that it authenticates to it."""
    async with node.db.read() as conn:
        found = await accounts.alias_of(conn, key_id)
    assert found is not None
    identity, stored = found
    sk = token_key_sk(node.auth.secret, identity)
    alias = key_hash(node.auth.secret, sk)
    if stored != alias:
        async with node.db.write() as conn:
            await accounts.set_alias(conn, key_id, alias)
    return sk


def derived_sk_key(secret: bytes, token_id: str) -> str:
    """The sk- key a token creates. Derived, not random, so a client that lost the answer can ask
    again with the same token and get the same key instead of losing the money."""
    return SK_PREFIX + hmac.new(secret, b"create:" + token_id.encode(), hashlib.sha256).hexdigest()[:32]


async def create(request: web.Request) -> web.Response:
    node = request.app[NODE]
    terms = _payout_terms(request)
    token = parse_token(await _token_from(request, node), node.mints)
    limits = await _create_limits(request, node)  # a bad field is refused before the token is used
    sk = derived_sk_key(node.auth.secret, token_identity(node.auth.secret, token))
    target = Target(new_key_hash=key_hash(node.auth.secret, sk), new_key_kind="sk")
    async with node.redeemer.gate.attempt(client_of(request)):  # a refused token counts: 429 past the limit
        redeemed = await node.redeemer.redeem(token, target)
    await _remember_terms(node, terms, redeemed.key_id)
    if redeemed.fresh and limits != budgets.Limits():
        async with node.db.write() as conn:
            await child_store.set_limits(conn, redeemed.key_id, limits, accounts.now_ms())
    async with node.db.read() as conn:
        key = await accounts.key_by_id(conn, redeemed.key_id)
    assert key is not None
    body = {"api_key": sk, "msats": redeemed.amount_msat, **await balance_body(node, key)}
    return json_response(body, status=201)


async def _create_limits(request: web.Request, node: Node) -> budgets.Limits:
    """``balance_limit``, ``balance_limit_reset``, ``validity_date`` of a create (Routstr Core's): the
    new key spends its own balance within them, as a child key spends its parent's. Read after
    ``_token_from``, which needed the body (its bytes are kept: read again here)."""
    _, body = await read_json_body(request, node.settings.max_body_bytes)
    return budgets.parse_limits(body, accounts.now_ms())


async def topup(request: web.Request) -> web.Response:
    node = request.app[NODE]
    terms = _payout_terms(request)
    key = await requesting_key(node, request)
    token = parse_token(await _token_from(request, node), node.mints)
    if key.mint_url and (node.mints.home_of(token.mint) != key.mint_url or token.unit != key.unit):
        raise InvalidRequest(
            f"This key holds {key.unit} eCash of {key.mint_url}; "
            "top it up with a token of that mint and unit",
            details={"mint": key.mint_url, "unit": key.unit},
        )
    async with node.db.read() as conn:  # a child key's top-up goes to the balance it spends: its parent's
        payer = await child_store.payer_of(conn, key.id)
    async with node.redeemer.gate.attempt(client_of(request)):
        redeemed = await node.redeemer.redeem(token, Target(key_id=payer))
    await _remember_terms(node, terms, key.id)
    if not redeemed.fresh:
        raise InvalidRequest("This Cashu token has already been redeemed", code="token_already_spent")
    async with node.db.read() as conn:
        after = await accounts.key_by_id(conn, key.id)
    assert after is not None
    return json_response({"msats": redeemed.amount_msat, **await balance_body(node, after)})


async def refund(request: web.Request) -> web.Response:
    """A key's balance as a Cashu token; with ``X-Cashu: <token>``, the change of the request that
    token paid for (handed out again if it was already: a lost stream must not lose the change)."""
    node = request.app[NODE]
    destination = await _lightning_destination(request, node)
    if destination is not None:
        return await _pay_out(request, node, destination)
    paid_with = xcashu_value(request.headers)
    if paid_with is not None:
        r = await node.xcashu.retrieve(paid_with)
        balance = 0
    else:
        key = await owning_key(node, request)
        r = await node.refunder.refund(key.id)
        async with node.db.read() as conn:
            after = await accounts.key_by_id(conn, key.id)
        assert after is not None
        balance = after.balance_msat
    out: dict[str, Any] = {
        "token": r.token,
        "amount": r.amount,
        "unit": r.unit,
        "mint": r.mint_url,
        "msats": r.debited_msat,
        "balance": balance,
    }
    if r.unit == "sat":
        out["sats"] = r.amount
    return web.Response(body=orjson.dumps(out), content_type="application/json")


async def _lightning_destination(request: web.Request, node: Node) -> str | None:
    """A Lightning destination for the refund: in the body, or the request's Refund-LNURL header."""
    if request.can_read_body:
        _, body = await read_json_body(request, node.settings.max_body_bytes)
        for name in ("destination", "lightning_address", "lnurl", "bolt11", "invoice"):
            value = body.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
    header = request.headers.get("Refund-LNURL", "").strip()
    return header or None


async def _pay_out(request: web.Request, node: Node, destination: str) -> web.Response:
    key = await owning_key(node, request)
    p = await node.payouts.pay(key.id, destination)
    async with node.db.read() as conn:
        after = await accounts.key_by_id(conn, key.id)
    assert after is not None
    out = {
        # routstr-sdk's refundToLightning reads refund_id, status and recipient
        "refund_id": p.id,
        "status": p.state,
        "recipient": destination,
        "state": p.state,
        "amount_sats": p.amount,
        "fee_sats": p.fee,
        "preimage": p.preimage,
        "msats": p.debited_msat,
        "balance": after.balance_msat,
    }
    return json_response(out, status=200 if p.state == "paid" else 202)


PREFIXES = ("/v1/balance", "/v1/wallet")  # /v1/wallet/*: what routstr-sdk (routstrd, routstr-chat) calls


def add_routes(app: web.Application) -> None:
    for prefix in PREFIXES:
        for path in ("/info", "", "/"):
            app.router.add_get(prefix + path, balance_info)
        app.router.add_post(prefix + "/create", create)
        app.router.add_get(prefix + "/create", create)
        app.router.add_post(prefix + "/topup", topup)
        app.router.add_post(prefix + "/refund", refund)
        app.router.add_get(prefix + "/history", balance_history.history)
        app.router.add_post(prefix + "/donate", balance_history.donate)
