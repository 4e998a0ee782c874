"""The answer's way back: the upstream's reply relayed to the client and settled, once.

A JSON answer is read whole, priced by its usage (or the documented estimate) and settled before it
is sent. A stream goes out as it comes, metered on the way; it is settled when the upstream ends, the
client goes away or the handler is cancelled, so a disconnect is billed for what was delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from time import perf_counter
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from routstr.billing.adapter import Adapter
from routstr.billing.stream import SseMeter, with_usage
from routstr.billing.xcashu import OneShot, XCashu
from routstr.core import failpoints
from routstr.core.errors import UpstreamError
from routstr.core.pricing import ModelPrice
from routstr.core.usage import Usage, estimate_usage
from routstr.dialects.cost import cost_object, put_cost
from routstr.dialects.sides import RequestFacts
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
    rate_headers: dict[str, str] | None = None  # X-RateLimit-*, X-Routstr-Max-Tokens-Lowered
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


def _no_rate() -> Decimal | None:
    return None


def charge_for(held: Held, usage: Usage) -> int:
    cost = held.price.usage_cost_msat(usage)
    return held.shot.charge(cost) if held.shot is not None else cost


class Relay:
    """Relays one answer and settles its reservation through the pipeline's ``settle``."""

    def __init__(self, settle: Settle, xcashu: XCashu, metrics: NodeMetrics) -> None:
        self.settle = settle
        self.xcashu = xcashu
        self.metrics = metrics
        # the BTC/USD rate for ``usage.cost.total_usd`` (the app sets the catalogue's: synchronous, cheap)
        self.btc_usd: Callable[[], Decimal | None] = _no_rate

    async def cost_object(self, held: Held, cost: int) -> dict[str, Any]:
        """``usage.cost``; for an X-Cashu request the change is paid out now and shown in it too."""
        rate = self.btc_usd()
        obj = cost_object(cost, None if rate is None else float(rate))
        if held.shot is None:
            return obj
        await self.xcashu.close(held.shot)
        return {**obj, **held.shot.cost_fields()}

    async def json(self, resp: aiohttp.ClientResponse, held: Held, adapter: Adapter) -> web.StreamResponse:
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
        upstream = adapter.upstream
        usage = upstream.usage(obj) or estimate(held, upstream.delivered_bytes(obj))
        if upstream.units_as_reserved:  # e.g. audio minutes, read from the upload
            usage = replace(usage, requests=held.facts.requests)
        cost = charge_for(held, usage)
        await self.settle(held, usage, cost)
        obj = adapter.from_upstream(obj, usage)
        adapter.client.attach_cost(obj, await self.cost_object(held, cost))
        headers = {COST_HEADER: str(cost), "X-Request-ID": held.request_id}
        if held.rate_headers:
            headers.update(held.rate_headers)
        if held.shot is not None:
            headers.update(held.shot.headers())
        return web.Response(body=orjson.dumps(obj), content_type="application/json", headers=headers)

    async def stream(
        self, request: web.Request, resp: aiohttp.ClientResponse, held: Held, adapter: Adapter
    ) -> web.StreamResponse:
        headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Request-ID": held.request_id,
            "x-routstr-request-id": held.request_id,  # a stream's headers leave before the middleware
            **(held.rate_headers or {}),
        }
        first: asyncio.Task[bytes] | None = None  # read while an X-Cashu early change is awaited
        if held.shot is not None and held.shot.early is not None:
            first = asyncio.ensure_future(resp.content.readany())
            headers.update(await self._early_change(held, first))
        out = web.StreamResponse(headers=headers)
        meter = SseMeter(adapter.upstream, hold_finish=not held.facts.wants_stream_usage)
        translator = adapter.stream_translator(held.facts.model)
        client_gone = False
        last = b""  # the upstream's final events, sent in one write with ours
        held.trace.stamp(out.headers)  # X-Routstr-Overhead-Ms: the node's time until the headers go out
        try:
            await out.prepare(request)
            chunk = await (first if first is not None else resp.content.readany())
            while chunk:
                data = meter.feed(chunk)
                if translator is not None and data:
                    data = translator.feed(data)
                if data:
                    # the upstream is done: this goes with the closing events, unless their cost waits
                    # for an X-Cashu change (a mint round trip): content is never held back for it
                    if resp.content.is_eof() and held.shot is None:
                        last += data
                    else:
                        await out.write(data)
                chunk = await resp.content.readany()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            client_gone = True
        except (aiohttp.ClientError, TimeoutError):  # the upstream broke off: bill what was delivered
            self.metrics.upstream_error(held.provider, "stream_cut")
        except asyncio.CancelledError:
            await self._settle_stream(held, meter)
            raise
        finally:
            if first is not None:  # the client left before it was read: never a task left behind
                first.cancel()
                if first.done() and not first.cancelled():
                    first.exception()
        cost = await self._settle_stream(held, meter)
        if client_gone:  # an X-Cashu change waits on its key for the retrieval route
            return out
        tail = last
        if translator is not None:
            tail += translator.finish(meter.usage, await self.cost_object(held, cost))
        else:
            tail += await self._closing_usage(held, meter, adapter, cost)
        if meter.done and translator is None:
            tail += meter.end_event
        try:
            await out.write_eof(tail)  # the usage (with its cost), [DONE] and the end in one write
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        return out

    async def _closing_usage(self, held: Held, meter: SseMeter, adapter: Adapter, cost: int) -> bytes:
        """The usage and its cost (with any X-Cashu change), after the content: on the usage-only
        event when the client asked for it (or its dialect has one); otherwise on the last finish
        event, as OpenRouter reports it, never a ``choices: []`` chunk the client did not expect."""
        finish = meter.take_finish()
        if finish and (meter.usage is not None or held.shot is not None):
            parsed = with_usage(finish, meter.usage_event)
            if parsed is not None:
                prefix, obj = parsed
                adapter.client.attach_cost(obj, await self.cost_object(held, cost))
                return prefix + b"data: " + orjson.dumps(obj) + b"\n\n"
        if meter.usage_event is not None and (held.facts.wants_stream_usage or (held.shot and not finish)):
            adapter.client.attach_cost(meter.usage_event, await self.cost_object(held, cost))
            return finish + meter.usage_event_prefix + b"data: " + orjson.dumps(meter.usage_event) + b"\n\n"
        if held.shot is not None:  # nothing else carries the change: an event of its own
            change: dict[str, Any] = {"object": "x_cashu", "choices": []}
            put_cost(change, await self.cost_object(held, cost))
            return finish + b"data: " + orjson.dumps(change) + b"\n\n"
        return finish

    async def _early_change(self, held: Held, first: asyncio.Task[bytes]) -> dict[str, str]:
        """The X-Cashu early change for the stream's headers. It is waited for while the upstream has
        sent nothing (no content could go out sooner), then at most ``xcashu.change_wait_s`` more; if
        not ready by then, the stream starts without it and that part comes with the rest at the end."""
        shot = held.shot
        assert shot is not None and shot.early is not None
        try:
            if not shot.early.done():
                waiting = perf_counter()
                await asyncio.wait((shot.early, first), return_when=asyncio.FIRST_COMPLETED)
                held.trace.upstream_s += perf_counter() - waiting  # the upstream's first bytes
                if not shot.early.done():
                    await asyncio.wait((shot.early,), timeout=self.xcashu.change_wait_s)
        except BaseException:
            first.cancel()
            raise
        return self.xcashu.early_headers(shot)

    async def _settle_stream(self, held: Held, meter: SseMeter) -> int:
        usage = meter.usage
        if usage is None or not (meter.final or meter.done):  # cut before the usage was complete
            usage = estimate(held, meter.delivered_bytes(), usage)
        cost = charge_for(held, usage)
        await self.settle(held, usage, cost)
        return cost
