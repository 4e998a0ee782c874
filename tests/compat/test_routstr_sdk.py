"""routstr-sdk (the TypeScript SDK of routstrd and routstr-chat) against a real ``routstr serve``: its
calls replayed call by call, field by field, in both of its modes, paying with tokens cashu-ts makes at
the test's Nutshell mint and receiving with cashu-ts every token the node hands back (issue 15).

* ``apikeys`` mode: the first request pays with a Cashu token as the Bearer key, ``v1/wallet/info``
  gives the ``sk-`` key that replaces it, balance deltas give what was spent, ``v1/wallet/topup`` and
  ``v1/wallet/refund`` move money in and out;
* ``xcashu`` mode: each request pays with ``X-Cashu``; the change comes back in the ``x-cashu``
  header (at a stream's start too), in a stream's final usage, and from ``v1/wallet/refund``;
* discovery and pricing (``/v1/models``, ``/v1/info``), Lightning (``LightningPayments``), and the
  error envelope as ``parseCoreError`` reads it.

The SDK is not on the npm registry reachable here: ``tests/compat/sdk*.py`` restate its calls from its
source, naming the file and function each one replays, and check each answer as the SDK does; every
mismatch issue 15 reported is fixed, so none is expected to fail. Error ``type``s follow our spec
pages where the SDK's differ (../shared/spec/routstr-clients.md); the SDK's handling of the node's
types is then checked to lose no money.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from tests.compat import sdk_lightning as ln
from tests.compat.cashu_ts import CashuTs, CashuTsError
from tests.compat.conftest import HOLD_FIELD, foreign_bolt11
from tests.compat.sdk import (
    Answer,
    ParsedCoreError,
    Provider,
    fetch_refund_token,
    get_token_balance,
    inspect_sse,
    js_number,
    parse_core_error,
    post_topup,
    route_request,
    usage_from_body,
    x_cashu_of_error,
)
from tests.compat.sdk_models import (
    fetch_models_from_provider,
    fetch_provider_info,
    price_ranking_entry,
    required_sats,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHAT = "/v1/chat/completions"
MODEL = "gpt-4o-mini"
TOPUP_MARGIN = 1.4  # RoutstrClient.ts TOPUP_MARGIN
MIN_INITIAL_DEPOSIT = 7  # RoutstrClient._spendToken, apikeys mode
SPEC_TYPES = {"invalid_request", "authentication_failed", "insufficient_balance", "upstream_error"}


def chat(content: str = "Hello from routstr-sdk", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "max_tokens": 64, **extra}


async def model_of(p: Provider, model_id: str = MODEL) -> dict[str, Any]:
    """``ProviderManager.getModelForProvider``: the provider's model of that id."""
    return next(m for m in await fetch_models_from_provider(p) if m.get("id") == model_id)


def error_of(a: Answer) -> ParsedCoreError:
    """``_handleErrorResponse``'s first step: ``parseCoreError(body, status, x-routstr-request-id)``."""
    parsed = parse_core_error(a.text, a.status, a.request_id)
    assert not parsed.raw and parsed.json, a  # understood: the spec's {"error": {...}} envelope
    assert isinstance(parsed.message, str) and parsed.message
    assert parsed.type in SPEC_TYPES and isinstance(parsed.code, str), parsed
    assert parsed.request_id == a.request_id and a.request_id, "x-routstr-request-id on every error"
    return parsed


def change_sats(total_msats: int) -> int:
    """A sat token pays whole sats, rounded up (the node's rule; the SDK subtracts what came back)."""
    return math.ceil(total_msats / 1000)


# ------------------------------------------------------------------------------ discovery


async def test_models_and_info_as_model_manager_and_provider_manager_read_them(
    provider: Provider, mint_url: str
) -> None:
    models = await fetch_models_from_provider(provider)
    assert models and any(m["id"] == MODEL for m in models)
    numeric = ("prompt", "completion", "request", "image", "web_search", "internal_reasoning")
    for m in models:  # core/types.ts Model / ModelSatsPricing, field by field
        assert isinstance(m.get("id"), str) and isinstance(m.get("name"), str), m
        sp = m.get("sats_pricing")
        assert isinstance(sp, dict), m["id"]
        for name in (*numeric, "max_prompt_cost", "max_completion_cost", "max_cost"):
            assert js_number(sp.get(name)), (m["id"], name, sp.get(name))
        assert price_ranking_entry(m) is not None  # ranked, not skipped
        # getRequiredSatsForModel: max_completion_cost when truthy, else max_cost (falls back to 50)
        assert sp["max_completion_cost"] > 0 or sp["max_cost"] > 0, m["id"]
        assert type(m.get("context_length")) is int and m["context_length"] > 0, m["id"]
        top = m.get("top_provider") or {}
        for name in ("context_length", "max_completion_tokens"):
            assert top.get(name) is None or type(top[name]) is int, (m["id"], name)
    model = await model_of(provider)
    deposit = required_sats(model, chat())
    assert 0 < deposit <= model["sats_pricing"]["max_cost"]
    info = await fetch_provider_info(provider)
    assert isinstance(info.get("version"), str) and mint_url in info["mints"]


# ------------------------------------------------------------------------------ apikeys mode


async def bootstrap_key(p: Provider, cashu_ts: CashuTs, mint_url: str, sats: int) -> tuple[str, str]:
    """``RoutstrClient._spendToken`` (apikeys, no stored key): a token of ``sats`` becomes the key;
    its balance is unknown locally, so ``BalanceManager.getTokenBalance`` asks the node with the token
    as Bearer. Returns (the token, the ``sk-`` key ``_handlePostResponseBalanceUpdate`` swaps in)."""
    token = await cashu_ts.send(mint_url, sats)
    first = await get_token_balance(p, token)
    assert not first.balance_unknown, first.answer
    assert (first.amount, first.reserved, first.unit) == (sats * 1000, 0, "msat")
    assert isinstance(first.api_key, str) and first.api_key.startswith("sk-")
    return token, first.api_key


async def test_apikeys_mode_chat_stream_balance_topup_and_refund(
    provider: Provider, cashu_ts: CashuTs, mint_url: str
) -> None:
    model = await model_of(provider)
    initial = max(math.ceil(required_sats(model, chat()) * TOPUP_MARGIN), MIN_INITIAL_DEPOSIT)
    token, sk = await bootstrap_key(provider, cashu_ts, mint_url, initial)

    # the first request still carries the bootstrap token as its Bearer key
    r = await route_request(provider, "apikeys", token, CHAT, chat())
    assert r.answer.status == 200, r.answer
    assert r.answer.request_id  # x-routstr-request-id
    usage = usage_from_body(r.answer.json())
    assert usage is not None and js_number(usage["total_msats"]) and js_number(usage["total_usd"])
    assert usage["sats_cost"] == r.answer.json()["usage"]["cost_sats"] == usage["total_msats"] / 1000
    # _handlePostResponseBalanceUpdate: the balance delta is what was spent; the sk- key replaces the token
    after = await get_token_balance(provider, token)
    assert after.api_key == sk and after.reserved == 0
    assert initial * 1000 - after.amount == usage["total_msats"] > 0

    # then the sk- key, streaming (fetchAIResponse's body): satsSpent is the balance delta
    r = await route_request(provider, "apikeys", sk, CHAT, chat(stream=True))
    assert r.answer.status == 200 and r.answer.headers["content-type"].startswith("text/event-stream")
    assert inspect_sse(r.answer.text).response_id and r.answer.request_id
    streamed = await get_token_balance(provider, sk)
    assert after.amount > streamed.amount and streamed.reserved == 0

    # BalanceManager.topUp: a cashu-ts token posted to v1/wallet/topup
    top = await cashu_ts.send(mint_url, 21)
    done = await post_topup(provider, sk, top)
    assert done.success and done.request_id, done.answer
    topped = await get_token_balance(provider, sk)
    assert topped.amount == streamed.amount + 21_000
    # the same token again: refused and understood; the SDK then tries to take it back (spent: no)
    again = await post_topup(provider, sk, top)
    assert not again.success and again.answer.status == 400
    parsed = error_of(again.answer)
    assert (parsed.type, parsed.code) == ("invalid_request", "token_already_spent")
    with pytest.raises(CashuTsError, match="already spent"):
        await cashu_ts.receive(top)  # BalanceManager._recoverFailedTopUp: nothing comes back
    assert (await get_token_balance(provider, sk)).amount == topped.amount

    # BalanceManager.refundApiKey: v1/wallet/refund (Bearer) -> data.token, received by cashu-ts
    refund = await fetch_refund_token(provider, sk)
    assert refund.success and isinstance(refund.token, str) and refund.request_id, refund.answer
    received = await cashu_ts.receive(refund.token)
    left = await get_token_balance(provider, sk)
    assert received * 1000 + left.amount == topped.amount and 0 <= left.amount < 1000


async def test_apikeys_stream_carries_its_usage_as_usage_ts_reads_it(
    provider: Provider, cashu_ts: CashuTs, mint_url: str
) -> None:
    """fetchAIResponse streams ``{model, messages, stream: true, max_tokens}`` (no ``stream_options``)
    and ``SSEEventInspector`` takes the usage (``usage.cost.total_msats``, ``usage.cost_sats``) from the
    events for its usage tracking."""
    _, sk = await bootstrap_key(provider, cashu_ts, mint_url, 20)
    r = await route_request(provider, "apikeys", sk, CHAT, chat(stream=True))
    assert r.answer.status == 200, r.answer
    seen = inspect_sse(r.answer.text)
    spent = 20_000 - (await get_token_balance(provider, sk)).amount
    assert spent > 0
    assert seen.usage is not None, "no usage event in the stream"
    # it rides on the finish chunk, so that clients indexing choices[0] (the SDK's own chat UI) never
    # meet a choices: [] chunk they did not ask for
    carrier = next(e for e in seen.events if isinstance(e, dict) and e.get("usage"))
    assert carrier["choices"] and carrier["choices"][0]["finish_reason"] == "stop", carrier
    assert seen.usage["total_msats"] == seen.usage["sats_cost"] * 1000 == spent


async def test_apikeys_mode_402_is_understood_and_a_top_up_lets_the_retry_through(
    provider: Provider, cashu_ts: CashuTs, mint_url: str
) -> None:
    _, sk = await bootstrap_key(provider, cashu_ts, mint_url, 1)
    body = chat("x" * 3000)
    r = await route_request(provider, "apikeys", sk, CHAT, body)
    assert r.answer.status == 402, r.answer
    parsed = error_of(r.answer)
    # the spec's type and code; the SDK tops up only on insufficient_quota/insufficient_balance and
    # otherwise fails over to another provider (nothing is spent either way)
    assert (parsed.type, parsed.code) == ("insufficient_balance", "payment_required")
    assert parsed.details is not None and parsed.details["available"] == 1000
    balance = await get_token_balance(provider, sk)
    assert (balance.amount, balance.reserved) == (1000, 0)
    # _handleErrorResponse's 402 branch (when it recognises the error): top up the shortfall x 1.4
    need = required_sats(await model_of(provider), body)
    shortfall = need - (balance.amount - balance.reserved) / 1000
    amount = math.ceil(max(shortfall, 0.21 * need) * TOPUP_MARGIN)
    assert (await post_topup(provider, sk, await cashu_ts.send(mint_url, amount))).success
    retry = await route_request(provider, "apikeys", sk, CHAT, body)
    assert retry.answer.status == 200, retry.answer
    spent = usage_from_body(retry.answer.json())
    assert spent is not None
    final = await get_token_balance(provider, sk)
    assert 1000 + amount * 1000 - final.amount == spent["total_msats"]


# ------------------------------------------------------------------------------ xcashu mode


async def xcashu_token(
    p: Provider, cashu_ts: CashuTs, mint_url: str, body: dict[str, Any]
) -> tuple[str, int]:
    """``RoutstrClient._spendToken`` (xcashu) -> ``CashuSpender.spend``: a token of
    ``ceil(getRequiredSatsForModel)`` sats."""
    sats = math.ceil(required_sats(await model_of(p), body))
    return await cashu_ts.send(mint_url, sats), sats


async def test_xcashu_mode_change_in_the_header_and_again_from_the_refund_route(
    provider: Provider, cashu_ts: CashuTs, mint_url: str
) -> None:
    token, sats = await xcashu_token(provider, cashu_ts, mint_url, chat())
    r = await route_request(provider, "xcashu", token, CHAT, chat())
    assert r.answer.status == 200 and r.answer.request_id, r.answer
    usage = usage_from_body(r.answer.json())
    assert usage is not None and js_number(usage["total_msats"])
    # RoutstrClient._handlePostResponseBalanceUpdate: satsSpent = initial - what x-cashu gives back
    change = r.answer.headers.get("x-cashu")
    assert change and await cashu_ts.receive(change) == sats - change_sats(usage["total_msats"])

    # another request whose answer is lost: CashuSpender.refundXcashuTokens asks the refund route
    token, sats = await xcashu_token(provider, cashu_ts, mint_url, chat())
    r = await route_request(provider, "xcashu", token, CHAT, chat())
    assert r.answer.status == 200, r.answer
    usage = usage_from_body(r.answer.json())
    assert usage is not None
    refund = await fetch_refund_token(provider, token, x_cashu=True)
    assert refund.success and isinstance(refund.token, str) and refund.request_id, refund.answer
    assert await cashu_ts.receive(refund.token) == sats - change_sats(usage["total_msats"])
    with pytest.raises(CashuTsError, match="already spent"):
        await cashu_ts.receive(r.answer.headers["x-cashu"])  # the same change: never paid twice
    # asked again once redeemed: a 400 the SDK understands (it keeps the token and retries later)
    again = await fetch_refund_token(provider, token, x_cashu=True)
    assert not again.success and again.answer.status == 400
    assert error_of(again.answer).type == "invalid_request"


async def test_xcashu_stream_change_at_the_start_in_the_final_usage_and_from_the_refund_route(
    provider: Provider, cashu_ts: CashuTs, mint_url: str
) -> None:
    # a budget of 1000 tokens: the token covers more than the request can cost (early change) and the
    # request reserves more than it costs (final change); the upstream is slow to start, so the early
    # change is made before the stream's headers go
    body = chat(max_tokens=1000, stream=True, **{HOLD_FIELD: 1000})
    token, sats = await xcashu_token(provider, cashu_ts, mint_url, body)
    r = await route_request(provider, "xcashu", token, CHAT, body)
    assert r.answer.status == 200, r.answer
    assert r.x_cashu_at_start, "the change the request cannot cost, in the stream's headers"
    early = await cashu_ts.receive(r.x_cashu_at_start)  # what the SDK receives (then drops the token)
    seen = inspect_sse(r.answer.text)
    assert seen.usage is not None and js_number(seen.usage["total_msats"])
    cost = seen.events[-1]["usage"]["cost"]
    assert cost["early_change"] == early > 0
    final = cost["x_cashu"]  # the rest, where only the body can carry it
    assert isinstance(final, str) and cost["change"] > 0
    # the SDK never reads it there: its refund sweep (or anyone holding the token) gets the same part
    refund = await fetch_refund_token(provider, token, x_cashu=True)
    assert refund.success and refund.token == final, refund.answer
    assert await cashu_ts.receive(refund.token) == cost["change"]
    assert early + cost["change"] + change_sats(seen.usage["total_msats"]) == sats


async def test_xcashu_errors_give_the_token_back_and_are_understood(
    provider: Provider, cashu_ts: CashuTs, mint_url: str
) -> None:
    # an upstream failure: the whole value in x-cashu, which _handleErrorResponse receives first
    token, sats = await xcashu_token(provider, cashu_ts, mint_url, chat())
    r = await route_request(provider, "xcashu", token, CHAT, chat(model="fail-500"))
    assert r.answer.status == 502, r.answer
    assert error_of(r.answer).type == "upstream_error"
    back = x_cashu_of_error("xcashu", r.answer)
    assert back and await cashu_ts.receive(back) == sats
    # the same token again: it paid already; the SDK, not seeing token_already_spent as a type,
    # tries to receive the original token (spent) and gives up: nothing is paid twice
    r = await route_request(provider, "xcashu", token, CHAT, chat())
    assert r.answer.status == 400 and x_cashu_of_error("xcashu", r.answer) is None
    parsed = error_of(r.answer)
    assert (parsed.type, parsed.code) == ("invalid_request", "token_already_spent")
    with pytest.raises(CashuTsError, match="already spent"):
        await cashu_ts.receive(token)
    # a token too small for the request: refused before redemption, so the original comes back
    small = await cashu_ts.send(mint_url, 1)
    r = await route_request(provider, "xcashu", small, CHAT, chat("x" * 3000))
    assert r.answer.status in (400, 402) and x_cashu_of_error("xcashu", r.answer) is None
    assert error_of(r.answer).details is not None
    assert await cashu_ts.receive(small) == 1


# ------------------------------------------------------------------------------ Lightning

PREFIXES = [pytest.param(ln.SDK_PREFIX, id="sdk-v2"), pytest.param("lightning", id="core-ui")]


async def paid(p: Provider, invoice_id: str, prefix: str, validate: bool = True) -> dict[str, Any]:
    """An app's loop over ``LightningPayments.getInvoiceStatus`` until ``status === "paid"`` (the test
    mint's FakeWallet pays at once; polled every 50 ms, a bounded number of times)."""
    for _ in range(200):
        status = await ln.get_invoice_status(p, invoice_id, prefix, validate)
        if status["status"] == "paid":
            return status
        assert status["status"] == "pending", status
        await asyncio.sleep(0.05)
    raise AssertionError(f"invoice {invoice_id} never paid")


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_lightning_invoice_create_poll_recover(provider: Provider, prefix: str) -> None:
    inv = await ln.create_invoice(provider, 150, "create", prefix=prefix)
    assert len(inv["payment_hash"]) == 64 and int(inv["payment_hash"], 16) >= 0
    status = await paid(provider, inv["invoice_id"], prefix)
    # LightningPayments.acceptPaidInvoice -> refreshKeyBalance with the key the invoice made
    assert await ln.refresh_key_balance(provider, status["api_key"]) == (150, 0)
    again = await ln.recover_invoice(provider, inv["bolt11"], prefix)
    assert again["status"] == "paid" and again["api_key"] == status["api_key"]
    assert await ln.refresh_key_balance(provider, status["api_key"]) == (150, 0)  # credited once


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_lightning_topup_invoice(
    provider: Provider, cashu_ts: CashuTs, mint_url: str, prefix: str
) -> None:
    """The status is polled with no Authorization header and validated as ``getInvoiceStatus`` does:
    paid, it carries the key the top-up was made with (its ``invoice_id`` only the creator has)."""
    _, sk = await bootstrap_key(provider, cashu_ts, mint_url, 10)
    inv = await ln.create_invoice(provider, 40, "topup", api_key=sk, prefix=prefix)
    status = await paid(provider, inv["invoice_id"], prefix)  # validated: an sk- api_key when paid
    assert status["api_key"] == sk
    assert await ln.refresh_key_balance(provider, sk) == (50, 0)  # credited, once
    assert (await ln.get_invoice_status(provider, inv["invoice_id"], prefix))["api_key"] == sk
    assert await ln.refresh_key_balance(provider, sk) == (50, 0)
    # on purpose (README, "Routstr's own clients"): the bolt11 is the payer's too, so recovering a
    # top-up by it withholds the key, and recoverInvoice's validateStatus throws
    with pytest.raises(ln.LightningPaymentError, match="canonical sk- API key, got None"):
        await ln.recover_invoice(provider, inv["bolt11"], prefix)


async def test_refund_to_lightning(
    provider: Provider, cashu_ts: CashuTs, mint_url: str, nutshell_python: Path
) -> None:
    """``refundToLightning`` names a Lightning address or LNURL; a bolt11 stands in for one here (the
    node takes either in ``lightning_address`` and answers the same shape)."""
    _, sk = await bootstrap_key(provider, cashu_ts, mint_url, 60)
    invoice = await foreign_bolt11(nutshell_python, 30)
    refund = await ln.refund_to_lightning(provider, sk, invoice)
    left, _ = await ln.refresh_key_balance(provider, sk)  # the SDK keeps the key to reconcile
    assert left == 60 - 30 - 1  # paid out: the invoice, and FakeWallet's 1-sat routing fee at cost
    ln.validate_refund(refund)  # refund_id, status and recipient, as refundToLightning checks
    assert refund["status"] in ("paid", "pending") and refund["recipient"] == invoice
