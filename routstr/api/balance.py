"""Balance endpoints: see, create, top up and refund a key's balance."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
from aiohttp import web

from routstr.api.info import json_response
from routstr.api.state import NODE, Node
from routstr.billing.body import read_json_body
from routstr.billing.xcashu import xcashu_value
from routstr.cashu.identity import token_identity
from routstr.core.errors import InvalidRequest, NotFound
from routstr.core.keys import SK_PREFIX, key_hash
from routstr.net.client_address import client_address
from routstr.storage import accounts
from routstr.wallet.redeem import Target, parse_token


def _client(request: web.Request) -> str | None:
    """The client's address (through a trusted proxy's X-Forwarded-For), for per-address limits."""
    return client_address(request, request.app[NODE].settings.trusted_proxies)


def _balance(key: accounts.KeyRow) -> dict[str, Any]:
    return {
        "balance": key.balance_msat,
        "reserved": key.reserved_msat,
        "unit": "msat",
        "mint": key.mint_url,
        "token_unit": key.unit,
        "total_spent": key.total_spent_msat,
        "total_requests": key.total_requests,
    }


async def _key(node: Node, request: web.Request) -> accounts.KeyRow:
    key_id = await node.auth.key_id(node.auth.require_bearer(request.headers), _client(request))
    async with node.db.read() as conn:
        key = await accounts.key_by_id(conn, key_id)
    if key is None:
        raise NotFound("Unknown key")
    return key


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
    node = request.app[NODE]
    terms = _payout_terms(request)
    key = await _key(node, request)
    await _remember_terms(node, terms, key.id)
    return json_response(_balance(key))


def derived_sk_key(secret: bytes, token_id: str) -> str:
    """The sk- key a token creates. Derived, not random, so a client that lost the answer can ask
    again with the same token and get the same key instead of losing the money."""
    return SK_PREFIX + hmac.new(secret, b"create:" + token_id.encode(), hashlib.sha256).hexdigest()[:32]


async def create(request: web.Request) -> web.Response:
    node = request.app[NODE]
    terms = _payout_terms(request)
    token = parse_token(await _token_from(request, node), node.mints)
    sk = derived_sk_key(node.auth.secret, token_identity(node.auth.secret, token))
    target = Target(new_key_hash=key_hash(node.auth.secret, sk), new_key_kind="sk")
    async with node.redeemer.gate.attempt(_client(request)):  # a refused token counts: 429 past the limit
        redeemed = await node.redeemer.redeem(token, target)
    await _remember_terms(node, terms, redeemed.key_id)
    async with node.db.read() as conn:
        key = await accounts.key_by_id(conn, redeemed.key_id)
    assert key is not None
    return json_response({"api_key": sk, "msats": redeemed.amount_msat, **_balance(key)}, status=201)


async def topup(request: web.Request) -> web.Response:
    node = request.app[NODE]
    terms = _payout_terms(request)
    key = await _key(node, request)
    token = parse_token(await _token_from(request, node), node.mints)
    if key.mint_url and (node.mints.home_of(token.mint) != key.mint_url or token.unit != key.unit):
        raise InvalidRequest(
            f"This key holds {key.unit} eCash of {key.mint_url}; "
            "top it up with a token of that mint and unit",
            details={"mint": key.mint_url, "unit": key.unit},
        )
    async with node.redeemer.gate.attempt(_client(request)):
        redeemed = await node.redeemer.redeem(token, Target(key_id=key.id))
    await _remember_terms(node, terms, key.id)
    if not redeemed.fresh:
        raise InvalidRequest("This Cashu token has already been redeemed", code="token_already_spent")
    async with node.db.read() as conn:
        after = await accounts.key_by_id(conn, key.id)
    assert after is not None
    return json_response({"msats": redeemed.amount_msat, **_balance(after)})


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
        key = await _key(node, request)
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
    key = await _key(node, request)
    p = await node.payouts.pay(key.id, destination)
    async with node.db.read() as conn:
        after = await accounts.key_by_id(conn, key.id)
    assert after is not None
    out = {
        "state": p.state,
        "amount_sats": p.amount,
        "fee_sats": p.fee,
        "preimage": p.preimage,
        "msats": p.debited_msat,
        "balance": after.balance_msat,
    }
    return json_response(out, status=200 if p.state == "paid" else 202)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/balance/info", balance_info)
    app.router.add_get("/v1/balance", balance_info)
    app.router.add_post("/v1/balance/create", create)
    app.router.add_get("/v1/balance/create", create)
    app.router.add_post("/v1/balance/topup", topup)
    app.router.add_post("/v1/balance/refund", refund)
