"""The one payment pipeline: authenticate → quote → reserve → forward → meter → settle.

Every billed endpoint runs through ``Pipeline.run`` with a small adapter for its dialect. Money
moves in exactly two transactions per request: the reservation (one conditional UPDATE that
cannot overdraw) and the settlement (charge what the usage says, release the rest). A failed
upstream call settles at zero; a client that goes away mid-stream is billed for what was delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from routstr.billing.adapter import EndpointAdapter, RequestFacts
from routstr.billing.adapters.common import cost_object
from routstr.billing.auth import Authenticator, missing_key
from routstr.billing.body import read_form_body, read_json_body
from routstr.billing.stream import SseMeter
from routstr.billing.xcashu import OneShot, XCashu, xcashu_value
from routstr.core import failpoints
from routstr.core.errors import (
    ApiError,
    InsufficientBalance,
    InvalidRequest,
    ServiceUnavailable,
    UpstreamError,
)
from routstr.core.pricing import ModelPrice
from routstr.core.usage import Usage, estimate_usage
from routstr.limits import LimitPolicy, MemoryLimiter, RateLimiter
from routstr.storage import ledger_ops
from routstr.storage.accounts import now_ms
from routstr.storage.db import Database
from routstr.upstream.catalogue import Catalogue
from routstr.upstream.errors import upstream_error
from routstr.upstream.providers import Provider, route, serves_any

log = logging.getLogger(__name__)

COST_HEADER = "X-Routstr-Cost-Msats"


@dataclass(slots=True)
class Held:
    """A reservation in flight, and what is needed to settle it."""

    key_id: int
    ref: str  # the node's id for this request's ledger entries and reservation
    request_id: str  # X-Request-ID, for the client
    amount_msat: int
    price: ModelPrice
    facts: RequestFacts
    settled: bool = False
    shot: OneShot | None = None  # paid by an X-Cashu token: its change goes back with the answer
    rate_headers: dict[str, str] | None = None  # X-RateLimit-* of this request
    tokens: int = 0  # what the request used, for the key's hourly token budget


class Pipeline:
    def __init__(
        self,
        db: Database,
        auth: Authenticator,
        catalogue: Catalogue,
        providers: list[Provider],
        max_body: int,
        reservation_ttl_s: int,
        xcashu: XCashu,
        aliases: Mapping[str, tuple[str, ...]] | None = None,
        missing_key_status: int = 401,
        limiter: RateLimiter | None = None,
        limits: LimitPolicy | None = None,
    ) -> None:
        self.limiter = limiter or MemoryLimiter()
        self.limits = limits or LimitPolicy()
        self.db = db
        self.auth = auth
        self.xcashu = xcashu
        self.missing_key_status = missing_key_status
        self.catalogue = catalogue
        self.providers = providers
        self.aliases = dict(aliases or {})  # public model id -> provider model ids
        self.max_body = max_body
        # a reservation older than this belongs to a request that cannot still be running (crash)
        self.reservation_ttl_ms = reservation_ttl_s * 1000
        self.in_flight = 0  # requests between reserve and settle, in this process

    async def run(
        self, request: web.Request, adapter: EndpointAdapter, request_id: str, ref: str
    ) -> web.StreamResponse:
        token = xcashu_value(request.headers)
        bearer = None if token else self.auth.bearer(request.headers)  # X-Cashu, if sent, pays
        if adapter.form_body:
            size, body = await read_form_body(request, self.max_body)
        else:
            raw, body = await read_json_body(request, self.max_body)
            size = len(raw)
        facts = adapter.inspect(body, size)
        base = self.catalogue.price(facts.model)
        candidates = [
            (p, m)
            for p, m in route(self.providers, facts.model, self.aliases)
            if adapter.for_kind(p.spec.kind)
        ]
        if not candidates:
            raise ServiceUnavailable(
                f"No provider can serve {facts.model!r} right now (all are cooling down after failures)"
                if serves_any(self.providers, facts.model, self.aliases)
                else f"No provider of this node serves {facts.model!r}",
                code="no_provider",
            )
        # reserve at the dearest candidate's price, so that falling back is always covered
        price = max((p for p, _ in candidates), key=lambda p: p.spec.fee).price(base)
        if token is None and bearer is None:
            raise self.xcashu.challenge(missing_key(self.missing_key_status), self._bounds(price, facts)[1])
        shot = None
        if token is not None:
            shot = await self.xcashu.open(token, *self._bounds(price, facts))
            key_id = shot.key_id
        else:
            assert bearer is not None
            key_id = await self.auth.key_id(bearer)
        decision = await self.limiter.acquire(key_id, self.limits.limits_for(key_id))
        if not decision.allowed:
            if shot is not None:  # the token was redeemed: all of it goes back with the 429
                err = decision.error()
                err.headers.update((await self.xcashu.close(shot)).headers())
                raise err
            raise decision.error()
        held: Held | None = None
        self.in_flight += 1
        try:
            held = await self._reserve(key_id, ref, request_id, price, facts, body, adapter)
            held.shot = shot
            held.rate_headers = decision.headers()
            try:
                resp = await self._forward(request, adapter, body, held, candidates, base)
            finally:
                if not held.settled:  # an error on our side: the user is not charged for it
                    await self._settle(held, None, 0)
        except ApiError as e:
            if shot is not None:  # the token was redeemed: all of it goes back, on the error too
                e.headers.update((await self.xcashu.close(shot)).headers())
            raise
        finally:
            self.in_flight -= 1
            await self.limiter.release(key_id, held.tokens if held is not None else 0)
        return resp

    def _bounds(self, price: ModelPrice, facts: RequestFacts) -> tuple[int, int]:
        """The least a request can cost (one output token when the node may cap the output) and
        the most (what is reserved when the balance allows it)."""
        units = facts.requests or 1
        if facts.requests or not facts.has_output:
            most = price.max_cost_msat(facts.prompt_bound_tokens, 0, units)
            return most, most
        most_out = facts.requested_max_output or self.catalogue.max_output(price)
        least_out = facts.requested_max_output or 1
        return (
            price.max_cost_msat(facts.prompt_bound_tokens, least_out, units),
            price.max_cost_msat(facts.prompt_bound_tokens, most_out, units),
        )

    async def _forward(
        self,
        request: web.Request,
        adapter: EndpointAdapter,
        body: dict[str, Any],
        held: Held,
        candidates: list[tuple[Provider, str]],
        base: ModelPrice,
    ) -> web.StreamResponse:
        resp, speaker = await self._first_answer(request, adapter, body, held, candidates, base)
        try:
            if held.facts.stream and resp.content_type == "text/event-stream":
                return await self._relay_stream(request, resp, held, speaker)
            return await self._relay_json(resp, held, speaker)
        finally:
            resp.release()

    async def _first_answer(
        self,
        request: web.Request,
        adapter: EndpointAdapter,
        body: dict[str, Any],
        held: Held,
        candidates: list[tuple[Provider, str]],
        base: ModelPrice,
    ) -> tuple[aiohttp.ClientResponse, EndpointAdapter]:
        """Try the providers in order until one answers; retryable failures move on, a 4xx the request
        caused does not. The request is then priced at the provider that answered, and read by the
        adapter for that provider's kind (e.g. Anthropic native or translated)."""
        error: ApiError | None = None
        for provider, model in candidates:
            speaker = adapter.for_kind(provider.spec.kind)
            assert speaker is not None  # filtered by run()
            payload = speaker.to_upstream(body if body.get("model") == model else {**body, "model": model})
            if held.facts.stream:
                speaker.prepare_stream(payload)
            provider.breaker.attempt()
            try:
                resp = await provider.client.post(
                    speaker.upstream_path, payload, request.headers, form=speaker.form_body
                )
            except UpstreamError as e:  # no connection, or no answer in time
                provider.breaker.failure()
                error = e
                continue
            if resp.status < 400:
                provider.breaker.success()
                held.price = provider.price(base)
                return resp, speaker
            raw_err = await resp.read()
            resp.release()
            error = upstream_error(resp.status, raw_err, resp.headers.get("Retry-After"))
            if resp.status == 429 or resp.status >= 500:
                provider.breaker.failure()
                continue
            provider.breaker.success()  # it answered: the request itself is at fault
            break
        await self._settle(held, None, 0)
        assert error is not None
        raise error

    async def _reserve(
        self,
        key_id: int,
        ref: str,
        request_id: str,
        price: ModelPrice,
        facts: RequestFacts,
        body: dict[str, Any],
        adapter: EndpointAdapter,
    ) -> Held:
        max_out = (
            0 if not facts.has_output else facts.requested_max_output or self.catalogue.max_output(price)
        )
        impose = False
        if facts.requests:
            if price.request_msat <= 0:
                raise InvalidRequest(
                    f"Model {facts.model!r} has no per-request price on this node",
                    details={"model": facts.model},
                    code="model_not_priced",
                )
            max_out = 0
        amount = price.max_cost_msat(facts.prompt_bound_tokens, max_out, facts.requests or 1)
        short = await self._try_reserve(key_id, amount, ref, facts.model)
        if short is not None:
            affordable = 0
            if facts.requested_max_output is None and facts.has_output:
                affordable = price.affordable_output_tokens(short, facts.prompt_bound_tokens)
            if affordable < 1:
                raise InsufficientBalance(short, amount)
            # the client set no limit: answer as long as the balance pays for, rather than refuse
            max_out, impose = min(max_out, affordable), True
            amount = price.max_cost_msat(facts.prompt_bound_tokens, max_out, facts.requests or 1)
            again = await self._try_reserve(key_id, amount, ref, facts.model)
            if again is not None:
                raise InsufficientBalance(again, amount)
        if impose:
            adapter.set_max_output(body, max_out)
        return Held(key_id, ref, request_id, amount, price, facts)

    async def _try_reserve(self, key_id: int, amount: int, ref: str, model: str) -> int | None:
        """None when reserved; otherwise the available balance that was too small."""
        return await self.db.ledger.run(
            ledger_ops.reserve,
            key_id,
            amount,
            ref,
            model,
            now_ms(),
            self.reservation_ttl_ms,
            quiet=self._quiet(),
        )

    async def _settle(self, held: Held, usage: Usage | None, cost: int) -> None:
        """Close the reservation, once. The writer finishes a submitted call even if this handler is
        cancelled, so a settlement is never lost half-way."""
        held.settled = True
        if usage is not None:
            held.tokens = usage.prompt_tokens + usage.completion_tokens
        s = await self.db.ledger.run(
            ledger_ops.settle,
            held.key_id,
            held.ref,
            held.amount_msat,
            cost,
            held.facts.model,
            usage.prompt_tokens if usage else None,
            usage.completion_tokens if usage else None,
            now_ms(),
            quiet=self._quiet(),
        )
        if s.unpaid:
            log.warning("request %s cost %d msat more than the key held", held.ref, s.unpaid)

    def _quiet(self) -> bool:
        """Only this request is in flight: the ledger may run it inline (see storage/writer.py)."""
        return self.in_flight <= 1

    @staticmethod
    def _estimate(held: Held, delivered_bytes: int) -> Usage:
        """The documented estimate (``routstr.core.usage``), for answers that came without usage."""
        u = estimate_usage(held.facts.prompt_text_bytes, delivered_bytes)
        return u if held.facts.has_output else Usage(u.prompt_tokens, 0, estimated=True)

    @staticmethod
    def _cost(held: Held, usage: Usage) -> int:
        cost = held.price.usage_cost_msat(usage)
        return held.shot.charge(cost) if held.shot is not None else cost

    async def _cost_object(self, held: Held, cost: int) -> dict[str, Any]:
        """``usage.cost``; for an X-Cashu request the change is paid out now and shown in it too."""
        if held.shot is None:
            return cost_object(cost)
        await self.xcashu.close(held.shot)
        return {**cost_object(cost), **held.shot.cost_fields()}

    async def _relay_json(
        self, resp: aiohttp.ClientResponse, held: Held, adapter: EndpointAdapter
    ) -> web.StreamResponse:
        failpoints.hit("pipeline.before_settle")  # reserved and forwarded, not settled
        try:
            raw = await resp.read()
            obj = orjson.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            await self._settle(held, None, 0)
            raise UpstreamError(f"The upstream's answer was unusable: {type(e).__name__}") from None
        usage = adapter.usage(obj) or self._estimate(held, adapter.delivered_bytes(obj))
        cost = self._cost(held, usage)
        await self._settle(held, usage, cost)
        obj = adapter.from_upstream(obj, usage)
        adapter.attach_cost(obj, await self._cost_object(held, cost))
        headers = {COST_HEADER: str(cost), "X-Request-ID": held.request_id}
        if held.rate_headers:
            headers.update(held.rate_headers)
        if held.shot is not None:
            headers.update(held.shot.headers())
        return web.Response(body=orjson.dumps(obj), content_type="application/json", headers=headers)

    async def _relay_stream(
        self, request: web.Request, resp: aiohttp.ClientResponse, held: Held, adapter: EndpointAdapter
    ) -> web.StreamResponse:
        out = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Request-ID": held.request_id,
                **(held.rate_headers or {}),
            }
        )
        meter = SseMeter(adapter)
        translator = adapter.stream_translator(held.facts.model)
        client_gone = False
        last = b""  # the upstream's final events, sent in one write with ours
        try:
            await out.prepare(request)
            async for chunk in resp.content.iter_any():
                data = meter.feed(chunk)
                if translator is not None and data:
                    data = translator.feed(data)
                if data:
                    if resp.content.is_eof():  # the upstream is done: this goes with the closing events
                        last += data
                    else:
                        await out.write(data)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            client_gone = True
        except (aiohttp.ClientError, TimeoutError):
            pass  # the upstream broke off: bill what was delivered, below
        except asyncio.CancelledError:
            await self._settle_stream(held, meter)
            raise
        cost = await self._settle_stream(held, meter)
        if client_gone:  # an X-Cashu change waits on its key for the retrieval route
            return out
        tail = last
        if translator is not None:
            tail += translator.finish(meter.usage, await self._cost_object(held, cost))
        elif meter.usage_event is not None and (held.facts.wants_stream_usage or held.shot):
            adapter.attach_cost(meter.usage_event, await self._cost_object(held, cost))
            tail += meter.usage_event_prefix + b"data: " + orjson.dumps(meter.usage_event) + b"\n\n"
        elif held.shot is not None:  # no usage event to carry the change: an event of its own
            change = {
                "object": "x_cashu",
                "choices": [],
                "usage": {"cost": await self._cost_object(held, cost)},
            }
            tail += b"data: " + orjson.dumps(change) + b"\n\n"
        if meter.done and translator is None:
            tail += meter.end_event
        try:
            await out.write_eof(tail)  # the usage (with its cost), [DONE] and the end in one write
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        return out

    async def _settle_stream(self, held: Held, meter: SseMeter) -> int:
        usage = meter.usage or self._estimate(held, meter.delivered_bytes())
        cost = self._cost(held, usage)
        await self._settle(held, usage, cost)
        return cost
