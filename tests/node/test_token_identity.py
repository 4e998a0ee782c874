"""A token's secrets alone open nothing (issue 14, item 1), against a real ``routstr serve``.

The node knows a redeemed Cashu token by an identity hash, and that identity opens what the token
paid for: the sk- key ``/v1/balance/create`` derived from it, the balance of the token used as a
bearer key, the change of the X-Cashu request it paid. The identity used to cover the mint and the
proofs' secrets only, so anyone who had seen the secrets (the mint itself, a log, a relay) could
rebuild "the same" token with made-up signatures and take the victim's money. Now:

* the identity covers each proof's signature ``C`` too: a token rebuilt from the victim's secrets
  with ``C`` = G (amounts 1) is another token, finds nothing, and the mint refuses its redemption
  (400, in the error envelope);
* a token first redeemed with NUT-12 DLEQ proofs carrying their blinding factors ``r`` opens what it
  paid for only when shown again with the same ``r``: the mint knows the secrets and can compute
  ``C``, but never sees ``r``. The same secrets and ``C`` with the DLEQ proofs removed, one ``r``
  removed, or a random ``r`` open nothing;
* the honest holder showing the exact token again (in either encoding) still gets the same key,
  balance or change;
* once a redemption is done the database keeps no secret of the redeemed proofs: every done redeem
  swap has ``inputs == "[]"``, and no secret of a victim's token is stored anywhere in ``swaps`` or
  ``proofs``;
* ``GET /v1/balance/create?initial_balance_token=…`` (a bearer credential in a URL lands in access
  logs) is refused with a 400 and the token is left unspent; ``POST`` with a JSON body works.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
from sqlalchemy import select

from routstr.cashu.nut00 import Proof
from routstr.cashu.tokens import Token, decode_token, encode_token_v3, encode_token_v4
from routstr.devtools.test_wallet import TestWallet
from routstr.storage.db import Database
from routstr.storage.schema import proofs, swaps
from tests.conftest import chat_body
from tests.node.node_process import NodeProcess, assert_audit_passes

pytestmark = pytest.mark.asyncio(loop_scope="session")

# the secp256k1 generator G, compressed: a valid point that is nobody's signature
G = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
VICTIM_SATS = 77  # 64 + 8 + 4 + 1: a token of several proofs


# --------------------------------------------------------------------------------------------- tokens


def rebuilt(token: str, change: Callable[[Proof], Proof], *, v3: bool = False) -> str:
    """``token`` with each proof passed through ``change``, in V4 (or V3) encoding."""
    t = decode_token(token)
    out = Token(t.mint, t.unit, [change(p) for p in t.proofs])
    return encode_token_v3(out) if v3 else encode_token_v4(out)


def forged(token: str, *, v3: bool = False) -> str:
    """What anyone who saw the secrets can build: the victim's secrets, C = G, amounts 1, no DLEQ."""
    return rebuilt(token, lambda p: replace(p, amount=1, C=G, dleq=None), v3=v3)


def without_r(token: str, *, v3: bool = False) -> str:
    """The victim's secrets and signatures C (the mint can compute them), the DLEQ proofs removed."""
    return rebuilt(token, lambda p: replace(p, dleq=None), v3=v3)


def random_r(token: str) -> str:
    """The victim's secrets, C, e and s, with a made-up blinding factor r on each proof."""

    def change(p: Proof) -> Proof:
        assert p.dleq is not None
        return replace(p, dleq=replace(p.dleq, r=secrets.token_hex(32)))

    return rebuilt(token, change)


def one_r_missing(token: str) -> str:
    """The victim's exact token but for the DLEQ proof of its last proof."""
    t = decode_token(token)
    out = Token(t.mint, t.unit, [*t.proofs[:-1], replace(t.proofs[-1], dleq=None)])
    return encode_token_v4(out)


def same_c_variants(token: str) -> dict[str, str]:
    """Tokens with the victim's secrets and C but not its r: what the mint itself could build."""
    return {
        "DLEQ removed": without_r(token),
        "a random r": random_r(token),
        "one r removed": one_r_missing(token),
    }


async def victim_token(wallet: TestWallet, mint_url: str, *, legacy: bool = False) -> str:
    """A token of several proofs, each with its DLEQ proof and blinding factor r (NUT-12)."""
    token = await wallet.asend(mint_url, VICTIM_SATS, legacy=legacy, include_dleq=True)
    proofs_ = decode_token(token).proofs
    assert len(proofs_) >= 2 and all(p.dleq is not None and p.dleq.r is not None for p in proofs_)
    return token


# --------------------------------------------------------------------------------------------- HTTP


class Answer:
    def __init__(self, status: int, headers: dict[str, str], raw: bytes) -> None:
        self.status, self.headers, self.raw = status, headers, raw

    def json(self) -> Any:
        return orjson.loads(self.raw)

    def __repr__(self) -> str:
        return f"{self.status} {self.raw[:400]!r}"


async def call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Answer:
    async with http.request(method, url, **kw) as r:
        return Answer(r.status, dict(r.headers), await r.read())


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def envelope(a: Answer) -> dict[str, Any]:
    """The error envelope of a refusal: ``{"error": {"type", "message", "code", ...}}``."""
    body = a.json()
    assert set(body) == {"error"}, a
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"], a
    assert isinstance(err["type"], str) and isinstance(err["code"], str), a
    return dict(err)


def refused_by_mint(a: Answer) -> None:
    """A forged token: its redemption is refused (the mint does not know its signatures)."""
    assert a.status == 400, a
    err = envelope(a)
    assert err["type"] == "invalid_request", a
    assert err["code"] in ("invalid_token", "token_already_spent"), a


def opens_nothing(a: Answer, *kept: str) -> None:
    """A refusal in the envelope (a client error, not the rate limit), none of ``kept`` in it."""
    assert 400 <= a.status < 500 and a.status != 429, a
    envelope(a)
    for secret in kept:
        assert secret.encode() not in a.raw, a


# --------------------------------------------------------------------------------------------- database


async def assert_no_input_secrets_kept(node: NodeProcess, done_redeems: int, *tokens: str) -> None:
    """Every done redeem swap keeps ``inputs == "[]"``, and no secret of ``tokens`` is stored in
    ``swaps`` or ``proofs`` (a secret is half a credential: the mint can compute the other half)."""
    db = Database(node.env["DATABASE_URL"])
    try:
        async with db.read() as conn:
            swap_rows = (await conn.execute(select(swaps))).all()
            proof_rows = (await conn.execute(select(proofs))).all()
    finally:
        await db.close()
    done = [r for r in swap_rows if r.kind == "redeem" and r.state == "done"]
    assert len(done) == done_redeems, [(r.kind, r.state) for r in swap_rows]
    assert [r.inputs for r in done] == ["[]"] * done_redeems, [r.inputs[:200] for r in done]
    stored = "\n".join(str(v) for row in [*swap_rows, *proof_rows] for v in row)
    for token in tokens:
        for p in decode_token(token).proofs:
            assert p.secret not in stored, f"secret {p.secret} of a redeemed token is in the database"


# --------------------------------------------------------------------------------------------- tests


async def test_secrets_alone_do_not_open_an_sk_key(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str
) -> None:
    await asyncio.to_thread(node_proc.start)
    token = await victim_token(wallet, mint_url)
    create, info = node_proc.url + "/v1/balance/create", node_proc.url + "/v1/balance/info"
    refund, chat = node_proc.url + "/v1/balance/refund", node_proc.url + "/v1/chat/completions"
    async with aiohttp.ClientSession() as http:
        a = await call(http, "POST", create, json={"cashu_token": token})
        assert a.status == 201, a
        created = a.json()
        sk = created["api_key"]
        assert sk.startswith("sk-")
        assert created["msats"] == VICTIM_SATS * 1000 and created["balance"] == VICTIM_SATS * 1000
        a = await call(http, "GET", info, headers=bearer(sk))
        assert a.status == 200, a
        before = a.json()
        assert before["balance"] == VICTIM_SATS * 1000 and before["total_spent"] == 0

        # the secrets with made-up signatures: no key, and no balance by any way in
        fake = forged(token)
        a = await call(http, "POST", create, json={"cashu_token": fake})
        refused_by_mint(a)
        opens_nothing(a, sk)
        for method, url, kw in (
            ("GET", info, {}),
            ("POST", chat, {"json": chat_body(max_tokens=5)}),
            ("POST", refund, {}),
        ):
            a = await call(http, method, url, headers=bearer(fake), **kw)
            refused_by_mint(a)
            opens_nothing(a, sk)
        # the secrets and the signatures, without the blinding factors: still no key
        for name, variant in same_c_variants(token).items():
            a = await call(http, "POST", create, json={"cashu_token": variant})
            assert a.status != 201, (name, a)
            opens_nothing(a, sk)

        # the victim's balance is whole, to the msat
        a = await call(http, "GET", info, headers=bearer(sk))
        assert a.status == 200 and a.json() == before, a
        # the honest holder's exact token, again: the same key (the other body field works too)
        a = await call(http, "POST", create, json={"initial_balance_token": token})
        assert a.status == 201, a
        assert a.json()["api_key"] == sk and a.json()["balance"] == VICTIM_SATS * 1000
        # and the value is the victim's: refunded to them whole, redeemable at the mint
        a = await call(http, "POST", refund, headers=bearer(sk))
        assert a.status == 200, a
        assert a.json()["amount"] == VICTIM_SATS and a.json()["balance"] == 0
        assert await wallet.areceive(a.json()["token"]) == VICTIM_SATS
    await assert_no_input_secrets_kept(node_proc, 1, token)
    await assert_audit_passes(node_proc)


async def test_secrets_alone_do_not_open_a_token_used_as_the_key(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str
) -> None:
    await asyncio.to_thread(node_proc.start)
    token = await victim_token(wallet, mint_url)
    info, refund = node_proc.url + "/v1/balance/info", node_proc.url + "/v1/balance/refund"
    chat = node_proc.url + "/v1/chat/completions"
    async with aiohttp.ClientSession() as http:
        a = await call(http, "POST", chat, json=chat_body(max_tokens=10), headers=bearer(token))
        assert a.status == 200, a
        cost = int(a.headers["X-Routstr-Cost-Msats"])
        assert 0 < cost < VICTIM_SATS * 1000
        a = await call(http, "GET", info, headers=bearer(token))
        assert a.status == 200, a
        before = a.json()
        assert before["balance"] == VICTIM_SATS * 1000 - cost and before["total_spent"] == cost
        assert before["total_requests"] == 1

        fake = forged(token)
        attackers = {"forged (C = G)": fake, **same_c_variants(token)}
        for name, value in attackers.items():
            for method, url, kw in (
                ("GET", info, {}),
                ("POST", chat, {"json": chat_body(max_tokens=5)}),
                ("POST", refund, {}),
            ):
                a = await call(http, method, url, headers=bearer(value), **kw)
                if value is fake:
                    refused_by_mint(a)
                opens_nothing(a)
                assert a.status != 200, (name, url, a)

        # the victim's balance is untouched, to the msat, and the victim's token still opens it
        a = await call(http, "GET", info, headers=bearer(token))
        assert a.status == 200 and a.json() == before, a
        # re-encoded (V3), the victim's token is the same token
        a = await call(http, "GET", info, headers=bearer(rebuilt(token, lambda p: p, v3=True)))
        assert a.status == 200 and a.json() == before, a
    await assert_no_input_secrets_kept(node_proc, 1, token)
    await assert_audit_passes(node_proc)


async def test_secrets_alone_do_not_retrieve_x_cashu_change(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str
) -> None:
    await asyncio.to_thread(node_proc.start)
    token = await victim_token(wallet, mint_url)
    refund, chat = node_proc.url + "/v1/balance/refund", node_proc.url + "/v1/chat/completions"
    async with aiohttp.ClientSession() as http:
        a = await call(http, "POST", chat, json=chat_body(max_tokens=10), headers={"X-Cashu": token})
        assert a.status == 200, a
        change = a.headers["X-Cashu"]
        cost = int(a.headers["X-Routstr-Cost-Msats"])
        change_sats = decode_token(change).amount
        assert cost % 1000 == 0 and cost // 1000 + change_sats == VICTIM_SATS and change_sats > 0

        fake = forged(token)
        attackers = {"forged (C = G)": fake, **same_c_variants(token)}
        for name, value in attackers.items():
            a = await call(http, "POST", refund, headers={"X-Cashu": value})
            if value is fake:
                assert a.status == 400, (name, a)
            opens_nothing(a, change)
            assert "token" not in a.json(), (name, a)
            # nor does it pay for a request: the change it would bring back is not the victim's
            a = await call(http, "POST", chat, json=chat_body(max_tokens=5), headers={"X-Cashu": value})
            opens_nothing(a, change)
            assert not a.headers.get("X-Cashu", "").startswith("cashu"), (name, a.headers)

        # the victim's token: its change, again, and it is still the victim's to redeem
        a = await call(http, "POST", refund, headers={"X-Cashu": token})
        assert a.status == 200, a
        assert a.json()["token"] == change and a.json()["amount"] == change_sats
        assert await wallet.areceive(change) == change_sats
    await assert_no_input_secrets_kept(node_proc, 1, token)
    await assert_audit_passes(node_proc)


async def test_the_v3_encoding_of_a_forged_token_opens_nothing_either(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str
) -> None:
    await asyncio.to_thread(node_proc.start)
    token = await victim_token(wallet, mint_url, legacy=True)
    assert token.startswith("cashuA")
    create, info = node_proc.url + "/v1/balance/create", node_proc.url + "/v1/balance/info"
    async with aiohttp.ClientSession() as http:
        a = await call(http, "POST", create, json={"cashu_token": token})
        assert a.status == 201, a
        sk = a.json()["api_key"]
        assert a.json()["balance"] == VICTIM_SATS * 1000

        for fake in (forged(token, v3=True), forged(token)):
            a = await call(http, "POST", create, json={"cashu_token": fake})
            refused_by_mint(a)
            opens_nothing(a, sk)
            a = await call(http, "GET", info, headers=bearer(fake))
            refused_by_mint(a)
        for variant in (without_r(token, v3=True), without_r(token)):
            a = await call(http, "POST", create, json={"cashu_token": variant})
            opens_nothing(a, sk)

        # the victim's token re-encoded as V4, with its r: the same token, the same key
        a = await call(http, "POST", create, json={"cashu_token": rebuilt(token, lambda p: p)})
        assert a.status == 201, a
        assert a.json()["api_key"] == sk and a.json()["balance"] == VICTIM_SATS * 1000
    await assert_no_input_secrets_kept(node_proc, 1, token)
    await assert_audit_passes(node_proc)


async def test_a_token_in_the_url_is_refused_and_left_unspent(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str
) -> None:
    await asyncio.to_thread(node_proc.start)
    token = await wallet.asend(mint_url, 21)
    create = node_proc.url + "/v1/balance/create"
    async with aiohttp.ClientSession() as http:
        for param in ("initial_balance_token", "cashu_token"):
            a = await call(http, "GET", create, params={param: token})
            assert a.status == 400, (param, a)
            assert envelope(a)["type"] == "invalid_request", a
            assert b"api_key" not in a.raw, a
        # not redeemed: every proof is still spendable at the mint
        assert set(await wallet.acheck(token)) == {"UNSPENT"}
        # the same token in a POST body makes the key
        a = await call(http, "POST", create, json={"initial_balance_token": token})
        assert a.status == 201, a
        assert a.json()["api_key"].startswith("sk-") and a.json()["balance"] == 21_000
    assert set(await wallet.acheck(token)) == {"SPENT"}
    await assert_no_input_secrets_kept(node_proc, 1, token)
    await assert_audit_passes(node_proc)
