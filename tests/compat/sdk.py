"""routstr-sdk's calls to a node, re-expressed in Python from its source (Routstr/routstr-sdk, read for
issue 15): each function names the SDK file and function it replays and sends what that function sends
(URL, method, headers, body) and reads only what it reads, with JavaScript's type checks.

Nothing here is the SDK's code: the calls are restated so the node can be checked against them.
The SDK normalises a provider's base URL with a trailing slash and appends ``v1/...`` to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

MAX_SAFE_INTEGER = 2**53 - 1


# ------------------------------------------------------------------------------ JavaScript's checks


def js_number(v: Any) -> bool:
    """``typeof v === "number"`` of a JSON value (a bool is not one)."""
    return isinstance(v, int | float) and not isinstance(v, bool)


def js_finite(v: Any) -> bool:
    """``Number.isFinite(v)``."""
    return js_number(v) and math.isfinite(v)


def js_safe_integer(v: Any) -> bool:
    """``Number.isSafeInteger(v)``: JSON ``5.0`` is one too, as JavaScript reads it."""
    return js_finite(v) and float(v).is_integer() and abs(v) <= MAX_SAFE_INTEGER


def truthy(v: Any) -> bool:
    """JavaScript truthiness of a JSON value."""
    return v not in (None, False, 0, "") and not (isinstance(v, float) and math.isnan(v))


# ------------------------------------------------------------------------------ answers


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names, as ``response.headers.get`` finds them
    text: str

    @property
    def ok(self) -> bool:  # ``response.ok``
        return 200 <= self.status < 300

    @property
    def request_id(self) -> str | None:
        """``response.headers.get("x-routstr-request-id") || undefined``, read by every wallet call."""
        return self.headers.get("x-routstr-request-id") or None

    def json(self) -> Any:
        return orjson.loads(self.text)


async def fetch(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Answer:
    async with http.request(method, url, allow_redirects=False, **kw) as r:
        text = await r.text()
        return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, text)


@dataclass
class Provider:
    """A node as the SDK addresses it: ``baseUrl`` ending in ``/``."""

    http: aiohttp.ClientSession
    base: str

    def __post_init__(self) -> None:
        if not self.base.endswith("/"):
            self.base += "/"


# ------------------------------------------------------------------------------ core/errorTypes.ts


@dataclass
class ParsedCoreError:
    """``ParsedCoreError``."""

    status: int | None
    request_id: str | None
    raw: bool = True
    json: bool | None = None
    type: str | None = None
    code: str | None = None
    message: str | None = None
    details: dict[str, Any] | None = None


def _structured(result: ParsedCoreError, err: dict[str, Any], with_details: bool = True) -> None:
    result.type = err.get("type") if isinstance(err.get("type"), str) else None
    result.code = err.get("code") if isinstance(err.get("code"), str) else None
    result.message = err.get("message") if isinstance(err.get("message"), str) else None
    if with_details:
        result.details = err.get("details") if isinstance(err.get("details"), dict) else None
    result.raw = False


def parse_core_error(body: str | None, status: int | None, request_id: str | None) -> ParsedCoreError:
    """``parseCoreError``: the four envelopes it knows, tried in its order."""
    result = ParsedCoreError(status, request_id)
    if not body:
        return result
    try:
        data = orjson.loads(body)
        result.json = True
    except orjson.JSONDecodeError:
        result.json, result.message = False, body
        return result
    if not isinstance(data, dict):
        return result
    if truthy(data.get("request_id")) and not result.request_id:
        result.request_id = str(data["request_id"])
    error, detail = data.get("error"), data.get("detail")
    if truthy(error) and isinstance(error, dict | list):  # format 1: {"error": {...}}
        _structured(result, error if isinstance(error, dict) else {})
    elif isinstance(detail, dict) and isinstance(detail.get("error"), dict):  # 2: {"detail": {"error"}}
        _structured(result, detail["error"])
    elif isinstance(detail, str):  # 3: {"detail": "..."}
        result.message, result.raw = detail, False
    elif isinstance(detail, dict) and any(truthy(detail.get(k)) for k in ("type", "code", "message")):
        _structured(result, detail, with_details=False)  # 4
    else:  # the fallback: loose fields
        for name in ("message", "type", "code"):
            if isinstance(data.get(name), str):
                setattr(result, name, data[name])
        result.raw = not (result.message or result.type or result.code)
    return result


# ------------------------------------------------------------------------------ wallet/BalanceManager.ts


@dataclass
class TokenBalance:
    """What ``BalanceManager.getTokenBalance`` returns."""

    amount: Any
    reserved: Any
    unit: str
    api_key: Any
    balance_unknown: bool = False
    answer: Answer | None = None


async def get_token_balance(p: Provider, token: str) -> TokenBalance:
    """``BalanceManager.getTokenBalance``: ``GET {base}v1/wallet/info`` with the key (an sk- key or a
    Cashu token) as Bearer; reads ``balance`` (msat), ``reserved`` (or 0) and ``api_key``."""
    a = await fetch(p.http, "GET", f"{p.base}v1/wallet/info", headers={"Authorization": f"Bearer {token}"})
    if not a.ok:
        return TokenBalance(0, 0, "msat", None, balance_unknown=True, answer=a)
    data = a.json()
    reserved = data.get("reserved")
    return TokenBalance(data.get("balance"), 0 if reserved is None else reserved, "msat", data.get("api_key"))


@dataclass
class WalletCall:
    """The result of ``_postTopUp`` / ``fetchRefundToken``."""

    success: bool
    answer: Answer
    request_id: str | None
    token: Any = None
    error: str | None = None
    parsed: ParsedCoreError | None = None


def _failed(a: Answer) -> tuple[str | None, ParsedCoreError]:
    parsed = parse_core_error(a.text, a.status, a.request_id)
    return parsed.request_id or a.request_id, parsed


async def post_topup(p: Provider, stored_key: str, cashu_token: str) -> WalletCall:
    """``BalanceManager._postTopUp``: ``POST {base}v1/wallet/topup`` with ``Authorization: Bearer`` and
    ``Content-Type: application/json``, body ``{cashu_token}``. Any 2xx is a success (the body unread)."""
    headers = {"Authorization": f"Bearer {stored_key}", "Content-Type": "application/json"}
    body = orjson.dumps({"cashu_token": cashu_token})
    a = await fetch(p.http, "POST", f"{p.base}v1/wallet/topup", headers=headers, data=body)
    if a.ok:
        return WalletCall(True, a, a.request_id)
    request_id, parsed = _failed(a)
    return WalletCall(False, a, request_id, error=parsed.message, parsed=parsed)


async def fetch_refund_token(p: Provider, key_or_token: str, x_cashu: bool = False) -> WalletCall:
    """``BalanceManager.fetchRefundToken``: ``POST {base}v1/wallet/refund``, no body, headers
    ``Content-Type: application/json`` and either ``Authorization: Bearer <key>`` or (xcashu mode,
    from ``CashuSpender.refundXcashuTokens``) ``X-Cashu: <the token that paid>``; reads ``data.token``."""
    headers = {"Content-Type": "application/json"}
    if x_cashu:
        headers["X-Cashu"] = key_or_token
    else:
        headers["Authorization"] = f"Bearer {key_or_token}"
    a = await fetch(p.http, "POST", f"{p.base}v1/wallet/refund", headers=headers)
    if a.ok:
        return WalletCall(True, a, a.request_id, token=a.json().get("token"))
    request_id, parsed = _failed(a)
    prefix = "Token already spent: " if parsed.type == "token_already_spent" else "API key refund failed: "
    return WalletCall(False, a, request_id, error=prefix + str(parsed.message), parsed=parsed)


# ------------------------------------------------------------------------------ client/RoutstrClient.ts


@dataclass
class Routed:
    """A routed request's response, as ``RoutstrClient._makeRequest`` gets it back from ``fetch``."""

    answer: Answer
    x_cashu_at_start: str | None  # the header as it stood when the response (the stream) started


def auth_headers(mode: str, token: str) -> dict[str, str]:
    """``RoutstrClient._buildBaseHeaders`` + ``_withAuthHeader``: JSON, then ``X-Cashu: <token>`` in
    xcashu mode or ``Authorization: Bearer <token>`` in apikeys mode."""
    auth = {"X-Cashu": token} if mode == "xcashu" else {"Authorization": f"Bearer {token}"}
    return {"Content-Type": "application/json", **auth}


async def route_request(p: Provider, mode: str, token: str, path: str, body: dict[str, Any]) -> Routed:
    """``RoutstrClient._prepareRoutedRequest`` / ``_makeRequest``: the path appended to the base URL
    without its slash; a JSON body without ``stream`` gets ``stream: false`` (OpenAI JSON paths)."""
    if not body.get("stream"):
        body = {**body, "stream": False}
    url = p.base.rstrip("/") + path
    async with p.http.post(url, headers=auth_headers(mode, token), data=orjson.dumps(body)) as r:
        early = r.headers.get("x-cashu")  # headers are in before any of the body is read
        text = await r.text()
        headers = {k.lower(): v for k, v in r.headers.items()}
    return Routed(Answer(r.status, headers, text), early)


def x_cashu_of_error(mode: str, a: Answer) -> str | None:
    """``_makeRequest`` on a non-ok answer: in xcashu mode the ``x-cashu`` header is the refund token
    ``_handleErrorResponse`` tries to receive first."""
    return a.headers.get("x-cashu") if mode == "xcashu" else None


# ------------------------------------------------------------------------------ client/usage.ts, sseShared.ts


def _breakdown(cost: dict[str, Any]) -> dict[str, Any]:
    """``extractCostBreakdown``: each field kept only when it is a finite number."""
    names = ("base_msats", "input_msats", "output_msats", "total_msats", "total_usd")
    return {n: cost[n] for n in names if js_finite(cost.get(n))}


def usage_from_body(body: Any, fallback_sats: float = 0) -> dict[str, Any] | None:
    """``extractUsageFromResponseBody``: ``usage.cost`` as a number (USD) or an object whose
    ``total_usd`` is the cost and ``total_msats`` / 1000 the sats spent."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    cost, sats, breakdown = 0.0, fallback_sats, {}
    value = usage.get("cost")
    if js_number(value):
        cost = value
    elif isinstance(value, dict):
        cost = value["total_usd"] if js_number(value.get("total_usd")) else 0
        if js_number(value.get("total_msats")):
            sats = value["total_msats"] / 1000
        breakdown = _breakdown(value)
    tokens = {k: usage.get(k) or 0 for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {**tokens, "cost": cost, "sats_cost": sats, **breakdown}


def usage_from_sse_json(data: Any) -> dict[str, Any] | None:
    """``extractUsageFromSSEJson`` for an event carrying ``usage``: ``usage.cost.total_msats``, else
    ``usage.cost_sats`` x 1000, gives the sats spent."""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return None
    cost, msats, breakdown = 0.0, 0.0, {}
    value = usage.get("cost")
    if js_number(value):
        cost = value
    elif isinstance(value, dict):
        cost, msats = value.get("total_usd") or 0, value.get("total_msats") or 0
        breakdown = _breakdown(value)
    if not msats and js_number(usage.get("cost_sats")):
        msats = usage["cost_sats"] * 1000
    tokens = {k: usage.get(k) or 0 for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return {**tokens, "cost": cost, "sats_cost": msats / 1000, **breakdown}


@dataclass
class SseInspection:
    """``SSEEventInspector``: the first event ``id`` and the latest usage seen, plus (for the
    test) every decoded event, in order."""

    response_id: str | None = None
    usage: dict[str, Any] | None = None
    events: list[Any] = field(default_factory=list)


def inspect_sse(text: str) -> SseInspection:
    """``drainSSEEvents`` + ``SSEEventInspector.inspectEventBlock``: blocks split on blank lines, their
    ``data:`` lines joined; ``[DONE]`` and non-JSON skipped."""
    out = SseInspection()
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [ln for ln in block.split("\n") if ln.startswith("data:")]
        data = [ln[6:] if ln.startswith("data: ") else ln[5:] for ln in lines]
        payload = "\n".join(data).strip()
        if not payload or payload == "[DONE]" or payload[0] not in "{[":
            continue
        event = orjson.loads(payload)
        out.events.append(event)
        if out.response_id is None and isinstance(event, dict) and isinstance(event.get("id"), str):
            out.response_id = event["id"].strip() or None
        usage = usage_from_sse_json(event)
        if usage is not None:
            out.usage = usage
    return out
