"""The one payment pipeline: authenticate → quote → reserve → forward → meter → settle.

Every billed endpoint runs through ``Pipeline.run`` with its client's dialect; the adapter of each
provider (the dialects on both sides, see ``billing/adapter.py``) is chosen by its kind. Money
moves in exactly two transactions per request: the reservation (one conditional UPDATE that
cannot overdraw) and the settlement (charge what the usage says, release the rest). A failed
upstream call settles at zero; a client that goes away mid-stream is billed for what was delivered
(the answer's way back is `relay.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from time import perf_counter
from typing import Any

import aiohttp
from aiohttp import web

from routstr.billing.adapter import Adapter, adapter_for
from routstr.billing.auth import Authenticator, missing_key
from routstr.billing.body import read_form_body, read_json_body
from routstr.billing.fitting import fitted_output, least_output, lowered_header
from routstr.billing.relay import Held, Relay
from routstr.billing.xcashu import OneShot, XCashu, too_small, xcashu_value
from routstr.core.budgets import refusal
from routstr.core.errors import (
    ApiError,
    InvalidRequest,
    NotFound,
    UpstreamError,
)
from routstr.core.pricing import ModelPrice
from routstr.core.usage import Usage
from routstr.dialects.sides import ClientSide, RequestFacts
from routstr.limits import Decision, LimitPolicy, Limits, RateLimiter
from routstr.limits.by_address import XCASHU_SPACE, address_group, admit
from routstr.metrics.counters import NodeMetrics, unreachable_kind
from routstr.metrics.trace import TRACE, Trace
from routstr.net.client_address import Network, client_address
from routstr.storage.accounts import now_ms
from routstr.storage.db import Database
from routstr.upstream.breaker import retry_after_seconds
from routstr.upstream.catalogue import Catalogue
from routstr.upstream.errors import upstream_error
from routstr.upstream.providers import Provider, route, serves_any

log = logging.getLogger(__name__)
# what the log says when a settlement found less money than the request cost: a written-off cost
WRITE_OFF = "more than the key held"
MAX_RESERVATION_MSAT = 2**62  # 46 million BTC: beyond any balance, and within a signed 64-bit column


class Pipeline:
    def __init__(
        self,
        db: Database,
        auth: Authenticator,
        catalogue: Catalogue,
        max_body: int,
        reservation_ttl_s: int,
        xcashu: XCashu,
        missing_key_status: int,
        limiter: RateLimiter,
        metrics: NodeMetrics,
        xcashu_limits: tuple[Limits, Limits],
        trusted_proxies: Sequence[Network],
    ) -> None:
        """Every setting comes from ``Settings`` through ``routstr.node.build_node``: none has a default
        of its own here."""
        self.trusted_proxies = trusted_proxies  # whose X-Forwarded-For names the client
        self.metrics = metrics
        self.xcashu_limits = xcashu_limits  # X-Cashu requests a minute: per client address, in total
        self.limiter = limiter
        self.db = db
        self.auth = auth
        self.xcashu = xcashu
        self.missing_key_status = missing_key_status
        self.catalogue = catalogue
        # providers, aliases, prices and rate limits: one snapshot per request (upstream/runtime.py)
        self.runtime = catalogue.runtime
        self.max_body = max_body
        # a reservation older than this belongs to a request that cannot still be running (crash)
        self.reservation_ttl_ms = reservation_ttl_s * 1000
        self.in_flight = 0  # requests between reserve and settle, in this process
        # the ledger refs of this process's reservations whose request is still running: their lease
        # is renewed by the heartbeat (``routstr.billing.leases``), so only a dead request's is swept
        self.live: set[str] = set()
        self.relay = Relay(self._settle, xcashu, self.metrics)

    @property
    def limits(self) -> LimitPolicy:
        """The rate limits in force now (for views: a request reads its snapshot's)."""
        return self.runtime.current.limits

    @property
    def aliases(self) -> Mapping[str, tuple[str, ...]]:
        """The exact aliases in force now (for views: a request reads its snapshot's)."""
        return self.runtime.current.aliases

    async def run(
        self, request: web.Request, client: ClientSide, request_id: str, ref: str
    ) -> web.StreamResponse:
        rt = self.runtime.current  # the one version this whole request sees, whatever changes meanwhile
        trace = request.get(TRACE) or Trace()
        trace.endpoint = client.name
        token = xcashu_value(request.headers)
        bearer = None if token else self.auth.bearer(request.headers)  # X-Cashu, if sent, pays
        if client.form_body:
            size, body = await read_form_body(request, self.max_body)
        else:
            raw, body = await read_json_body(request, self.max_body)
            size = len(raw)
        facts = client.inspect(body, size)
        facts.model = rt.resolve(facts.model)  # a wildcard alias: served and billed as its target
        # an image's tokens are not bounded by its bytes (a URL is a few): each counts at the bound
        facts.prompt_bound_tokens += facts.images * self.catalogue.image_input_tokens
        base = self.catalogue.price(facts.model, rt)
        candidates = route(
            rt.providers, facts.model, rt.aliases, lambda p: adapter_for(client, p.spec.kind) is not None
        )
        if not candidates:  # a 404, never a 5xx: SDKs retry those, and no retry can help here
            raise NotFound(
                f"No provider of this node serves {facts.model!r} on this endpoint"
                if serves_any(rt.providers, facts.model, rt.aliases)
                else f"No provider of this node serves {facts.model!r}",
                details={"model": facts.model},
                code="model_not_found",
            )
        # reserve at the dearest candidate's price, so that falling back is always covered
        price = max((p for p, _ in candidates), key=lambda p: p.spec.fee).price(base)
        if token is None and bearer is None:
            raise self.xcashu.challenge(missing_key(self.missing_key_status), self._bounds(price, facts)[1])
        shot = None
        decision: Decision | None = None
        if token is not None:
            # every token is a fresh key, so per-key limits never bind: X-Cashu is counted per client
            # address and in total instead, before the token is touched (a refusal leaves it unspent)
            remote = client_address(request, self.trusted_proxies)
            refused = await admit(self.limiter, address_group(remote), XCASHU_SPACE, *self.xcashu_limits)
            if refused is not None:
                raise refused.error()
            shot = await self.xcashu.open(token, *self._bounds(price, facts), remote=remote)
            key_id = shot.key_id
        else:
            assert bearer is not None
            # a Cashu token as the key may be redeemed now: its refusals are counted per client address
            remote = None if bearer.startswith("sk-") else client_address(request, self.trusted_proxies)
            key_id = await self.auth.key_id(bearer, remote)
            decision = await self.limiter.acquire(key_id, rt.limits.limits_for(key_id))
            if not decision.allowed:
                raise decision.error()
        held: Held | None = None
        self.in_flight += 1
        try:
            held = await self._reserve(key_id, ref, request_id, price, facts, body, client, trace, shot)
            if shot is not None and facts.stream:  # change beyond the reservation, made while upstream works
                self.xcashu.start_early(shot)
            try:
                if decision is not None:  # X-RateLimit-*, beside X-Routstr-Max-Tokens-Lowered
                    held.rate_headers = {**(held.rate_headers or {}), **decision.headers()}
                resp = await self._forward(request, client, body, held, candidates, base)
            finally:
                if not held.settled:  # an error on our side: the user is not charged for it
                    await self._settle(held, None, 0)
        except ApiError as e:
            if shot is not None:  # the token was redeemed: all of it goes back, on the error too
                e.headers.update((await self.xcashu.close(shot)).headers())
            raise
        finally:
            self.in_flight -= 1
            self.live.discard(ref)  # settled, or never to be: its lease is not renewed any more
            if decision is not None:
                await self.limiter.release(key_id, held.tokens if held is not None else 0)
        return resp

    def _floor(self, facts: RequestFacts) -> int:
        """The least a client's own output limit may be lowered to (MIN_FITTED_MAX_TOKENS, or more
        when the upstream needs more for this request)."""
        return max(self.catalogue.min_fitted_output, facts.upstream_min_output)

    def _bounds(self, price: ModelPrice, facts: RequestFacts) -> tuple[int, int]:
        """The least a request can cost (at the least output limit the node may run it at, see
        billing/fitting.py) and the most (what is reserved when the balance allows it)."""
        units = facts.requests or 1
        if facts.requests or not facts.has_output:
            most = price.max_cost_msat(facts.prompt_bound_tokens, 0, units)
            return most, most
        most_out = facts.requested_max_output or self.catalogue.max_output(price)
        least_out = least_output(facts.requested_max_output, self._floor(facts))
        return (
            price.max_cost_msat(facts.prompt_bound_tokens, least_out * facts.outputs, units),
            price.max_cost_msat(facts.prompt_bound_tokens, most_out * facts.outputs, units),
        )

    async def _forward(
        self,
        request: web.Request,
        client: ClientSide,
        body: dict[str, Any],
        held: Held,
        candidates: list[tuple[Provider, str]],
        base: ModelPrice,
    ) -> web.StreamResponse:
        resp, adapter = await self._first_answer(request, client, body, held, candidates, base)
        try:
            if held.facts.stream and resp.content_type == "text/event-stream":
                return await self.relay.stream(request, resp, held, adapter)
            return await self.relay.json(resp, held, adapter)
        finally:
            resp.release()

    async def _first_answer(
        self,
        request: web.Request,
        client: ClientSide,
        body: dict[str, Any],
        held: Held,
        candidates: list[tuple[Provider, str]],
        base: ModelPrice,
    ) -> tuple[aiohttp.ClientResponse, Adapter]:
        """Try the providers in order until one answers; retryable failures move on, a 4xx the request
        caused does not. The request is then priced at the provider that answered, and read by the
        adapter for that provider's kind (e.g. Anthropic native or translated)."""
        error: ApiError | None = None
        trace = held.trace
        for provider, model in candidates:
            adapter = adapter_for(client, provider.spec.kind)
            assert adapter is not None  # filtered by run()
            upstream = adapter.upstream
            payload = adapter.to_upstream(body if body.get("model") == model else {**body, "model": model})
            if held.facts.stream:
                upstream.prepare_stream(payload)
            provider.breaker.attempt(model)
            sent = perf_counter()
            try:
                resp = await provider.client.post(
                    upstream.path, payload, request.headers, form=upstream.form_body
                )
            except UpstreamError as e:  # no connection, or no answer in time
                trace.upstream_s += perf_counter() - sent
                provider.breaker.unreachable(model)  # the provider is down, whatever the model
                self.metrics.upstream_error(provider.spec.name, unreachable_kind(e))
                error = e
                continue
            if resp.status < 400:
                trace.upstream_s += perf_counter() - sent  # until its headers
                trace.model = held.facts.model  # a model some provider serves: fit for a label
                provider.breaker.success(model)
                held.price = provider.price(base)
                held.provider = provider.spec.name
                return resp, adapter
            raw_err = await resp.read()
            trace.upstream_s += perf_counter() - sent
            resp.release()
            self.metrics.upstream_error(provider.spec.name, f"http_{resp.status}")
            error = upstream_error(resp.status, raw_err, resp.headers.get("Retry-After"))
            if resp.status == 429 or resp.status >= 500:  # this model is failing, not the provider
                provider.breaker.failure(model, retry_after_seconds(resp.headers.get("Retry-After")))
                continue
            provider.breaker.success(model)  # it answered: the request itself is at fault
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
        client: ClientSide,
        trace: Trace,
        shot: OneShot | None,
    ) -> Held:
        """Hold the most the request can cost, and make sure the upstream cannot answer beyond it.

        The output limit always goes upstream (the client's, else the model's maximum, else what the
        balance pays for), and the reservation covers it for every generation the request asks for
        (``n``, ``best_of``, prompt lists): nothing is ever delivered beyond what is reserved.
        """
        if facts.requests and price.request_msat <= 0:
            raise InvalidRequest(
                f"Model {facts.model!r} has no per-request price on this node",
                details={"model": facts.model},
                code="model_not_priced",
            )
        capped = facts.has_output and not facts.requests
        max_out = (facts.requested_max_output or self.catalogue.max_output(price)) if capped else 0
        amount = self._amount(price, facts, max_out, shot)
        short = await self._try_reserve(key_id, amount, ref, facts.model)
        if short is not None:
            # answer as long as the balance pays for rather than refuse (billing/fitting.py)
            fitted = None
            if capped:
                affordable = price.affordable_output_tokens(short, facts.prompt_bound_tokens) // facts.outputs
                fitted = fitted_output(facts.requested_max_output, max_out, affordable, self._floor(facts))
            if fitted is None:
                least = least_output(facts.requested_max_output, self._floor(facts)) if capped else 0
                raise _short(short, self._amount(price, facts, least, shot), shot)
            max_out = fitted
            amount = self._amount(price, facts, max_out, shot)
            again = await self._try_reserve(key_id, amount, ref, facts.model)
            if again is not None:
                raise _short(again, amount, shot)
        if capped and max_out != facts.requested_max_output:
            client.set_max_output(body, max_out)
        held = Held(key_id, ref, request_id, amount, price, facts, trace, shot=shot)
        if capped and facts.requested_max_output and max_out < facts.requested_max_output:
            held.rate_headers = lowered_header(facts.requested_max_output, max_out)
        held.max_output_tokens = max_out * facts.outputs
        held.image_tokens = facts.images * self.catalogue.image_input_tokens
        self.live.add(ref)  # from here on the caller settles it, and the heartbeat renews its lease
        return held

    @staticmethod
    def _amount(price: ModelPrice, facts: RequestFacts, max_out: int, shot: OneShot | None) -> int:
        """The reservation: in whole units of an X-Cashu token's unit, so its charge always fits. One that
        no balance can ever hold (it would not fit the ledger's 64-bit column) is a 400, not a 500."""
        amount = price.max_cost_msat(facts.prompt_bound_tokens, max_out * facts.outputs, facts.requests or 1)
        if amount > MAX_RESERVATION_MSAT:
            raise InvalidRequest(
                "This request could cost more than any balance can hold: lower its output limit, n or "
                "best_of",
                details={"required": amount},
                code="request_too_large",
            )
        return shot.charge(amount) if shot is not None else amount

    async def _try_reserve(self, key_id: int, amount: int, ref: str, model: str) -> int | None:
        """None when reserved; otherwise the available balance that was too small."""
        return await self.db.ledger.reserve(key_id, amount, ref, model, now_ms(), self.reservation_ttl_ms)

    async def _settle(self, held: Held, usage: Usage | None, cost: int) -> None:
        """Close the reservation, once. The ledger finishes a submitted call even if this handler is
        cancelled, so a settlement is never lost half-way."""
        held.settled = True
        self.live.discard(held.ref)
        if usage is not None:
            held.tokens = usage.prompt_tokens + usage.completion_tokens
        s = await self.db.ledger.settle(
            held.key_id,
            held.ref,
            held.amount_msat,
            cost,
            held.facts.model,
            usage.prompt_tokens if usage else None,
            usage.completion_tokens if usage else None,
            now_ms(),
        )
        if usage is not None:
            self.metrics.settled(held.facts.model, usage.prompt_tokens, usage.completion_tokens, s.charge)
        if s.unpaid:  # never on a request the node capped and reserved for (tests watch for this line)
            log.warning("request %s cost %d msat %s", held.ref, s.unpaid, WRITE_OFF)


def _short(available: int, required: int, shot: OneShot | None) -> ApiError:
    """A balance too small for the request: 402 for a key; 400 for an X-Cashu token (NUT-24), whose
    value then comes back whole in the error's ``X-Cashu``."""
    if shot is not None:
        return too_small(available, required, shot.unit)
    return refusal(available, required)  # in a spending limit's words when the limit was short
