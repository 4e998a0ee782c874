"""The answer's way back: the upstream's reply relayed to the client and settled, once.

A JSON answer is read whole, priced by its usage (or the documented estimate) and settled before it
is sent. A stream goes out as it comes, metered on the way; it is settled when the upstream ends, the
client goes away or the handler is cancelled, so a disconnect is billed for what was delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from routstr.billing.adapter import EndpointAdapter, RequestFacts
from routstr.billing.adapters.common import cost_object
from routstr.billing.stream import SseMeter
from routstr.billing.xcashu import OneShot, XCashu
from routstr.core import failpoints
from routstr.core.errors import UpstreamError
from routstr.core.pricing import ModelPrice
from routstr.core.usage import Usage, estimate_usage
from routstr.metrics.counters import NodeMetrics
from routstr.metrics.trace import Trace

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
    trace: Trace  # timing: the upstream's share of this request
    settled: bool = False
    shot: OneShot | None = None  # paid by an X-Cashu token: its change goes back with the answer
    rate_headers: dict[str, str] | None = None  # X-RateLimit-* of this request
    tokens: int = 0  # what the request used, for the key's hourly token budget
    provider: str = ""  # the provider that answered
    max_output_tokens: int = 0  # the output reserved, for all generations together (the upstream's cap)
    image_tokens: int = 0  # the prompt tokens reserved for image inputs (count × per-image bound)


Settle = Callable[[Held, Usage | None, int], Awaitable[None]]


def estimate(held: Held, delivered_bytes: int, partial: Usage | None = None) -> Usage:
    """The documented estimate (``routstr.core.usage``) for an answer without (complete) usage: all
    that was sent and all that was delivered, within what was reserved (the upstream was capped
    there). A partial usage (Anthropic's ``message_start``) is a lower bound, never the answer."""
    f = held.facts
    u = estimate_usage(f.prompt_text_bytes, delivered_bytes)
    prompt = u.prompt_tokens + held.image_tokens
    if f.prompt_bound_tokens:
        prompt = min(prompt, f.prompt_bound_tokens)
    completion = u.completion_tokens if f.has_output else 0
    if held.max_output_tokens:
        completion = min(completion, held.max_output_tokens)
    if partial is None:
        return Usage(prompt, completion, estimated=True)
    return replace(
        partial,
        prompt_tokens=partial.prompt_tokens or prompt,
        completion_tokens=max(partial.completion_tokens, completion),
        estimated=True,
    )


def charge_for(held: Held, usage: Usage) -> int:
    cost = held.price.usage_cost_msat(usage)
    return held.shot.charge(cost) if held.shot is not None else cost


class Relay:
    """Relays one answer and settles its reservation through the pipeline's ``settle``."""

    def __init__(self, settle: Settle, xcashu: XCashu, metrics: NodeMetrics) -> None:
        self.settle = settle
        self.xcashu = xcashu
        self.metrics = metrics

    async def cost_object(self, held: Held, cost: int) -> dict[str, Any]:
        """``usage.cost``; for an X-Cashu request the change is paid out now and shown in it too."""
        if held.shot is None:
            return cost_object(cost)
        await self.xcashu.close(held.shot)
        return {**cost_object(cost), **held.shot.cost_fields()}

    async def json(
        self, resp: aiohttp.ClientResponse, held: Held, adapter: EndpointAdapter
    ) -> web.StreamResponse:
        failpoints.hit("pipeline.before_settle")  # reserved and forwarded, not settled
        reading = perf_counter()
        try:
            raw = await resp.read()
            held.trace.upstream_s += perf_counter() - reading
            obj = orjson.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            self.metrics.upstream_error(held.provider, "invalid_answer")
            await self.settle(held, None, 0)
            raise UpstreamError(f"The upstream's answer was unusable: {type(e).__name__}") from None
        usage = adapter.usage(obj) or estimate(held, adapter.delivered_bytes(obj))
        if getattr(adapter, "units_as_reserved", False):  # e.g. audio minutes, read from the upload
            usage = replace(usage, requests=held.facts.requests)
        cost = charge_for(held, usage)
        await self.settle(held, usage, cost)
        obj = adapter.from_upstream(obj, usage)
        adapter.attach_cost(obj, await self.cost_object(held, cost))
        headers = {COST_HEADER: str(cost), "X-Request-ID": held.request_id}
        if held.rate_headers:
            headers.update(held.rate_headers)
        if held.shot is not None:
            headers.update(held.shot.headers())
        return web.Response(body=orjson.dumps(obj), content_type="application/json", headers=headers)

    async def stream(
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
        held.trace.stamp(out.headers)  # X-Routstr-Overhead-Ms: the node's time until the headers go out
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
        except (aiohttp.ClientError, TimeoutError):  # the upstream broke off: bill what was delivered
            self.metrics.upstream_error(held.provider, "stream_cut")
        except asyncio.CancelledError:
            await self._settle_stream(held, meter)
            raise
        cost = await self._settle_stream(held, meter)
        if client_gone:  # an X-Cashu change waits on its key for the retrieval route
            return out
        tail = last
        if translator is not None:
            tail += translator.finish(meter.usage, await self.cost_object(held, cost))
        elif meter.usage_event is not None and (held.facts.wants_stream_usage or held.shot):
            adapter.attach_cost(meter.usage_event, await self.cost_object(held, cost))
            tail += meter.usage_event_prefix + b"data: " + orjson.dumps(meter.usage_event) + b"\n\n"
        elif held.shot is not None:  # no usage event to carry the change: an event of its own
            change = {
                "object": "x_cashu",
                "choices": [],
                "usage": {"cost": await self.cost_object(held, cost)},
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
        usage = meter.usage
        if usage is None or not (meter.final or meter.done):  # cut before the usage was complete
            usage = estimate(held, meter.delivered_bytes(), usage)
        cost = charge_for(held, usage)
        await self.settle(held, usage, cost)
        return cost
