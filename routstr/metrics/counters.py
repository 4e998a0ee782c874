"""What the node counts while it serves: plain ints in dicts, keyed by small bounded tuples.

Nothing here takes a lock or builds a Prometheus object; ``collector.py`` reads these at scrape time.
Label values are bounded: endpoint families and route paths are fixed, a model is counted only once
a provider accepted it, providers and mints come from the configuration.
"""

from __future__ import annotations

from aiohttp import web

from routstr.metrics.histogram import LATENCY_BUCKETS, OVERHEAD_BUCKETS, Histogram
from routstr.metrics.trace import Trace


class NodeMetrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}  # (endpoint, model, status) -> answers
        self.latency: dict[str, Histogram] = {}  # endpoint -> seconds until the answer ended
        self.overhead: dict[str, Histogram] = {}  # billed endpoint -> the node's own seconds
        self.prompt_tokens: dict[str, int] = {}  # model -> tokens billed
        self.completion_tokens: dict[str, int] = {}
        self.charged_msat: dict[str, int] = {}  # model -> msat charged (what the ledger's charge rows add)
        self.upstream_errors: dict[tuple[str, str], int] = {}  # (provider, kind) -> failures

    def answered(self, trace: Trace, endpoint: str, status: int, elapsed_s: float) -> None:
        """One answer has ended (a stream: its last byte)."""
        key = (endpoint, trace.model, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        h = self.latency.get(endpoint)
        if h is None:
            h = self.latency[endpoint] = Histogram(LATENCY_BUCKETS)
        h.observe(elapsed_s)
        if trace.endpoint and trace.overhead_s >= 0.0:
            o = self.overhead.get(endpoint)
            if o is None:
                o = self.overhead[endpoint] = Histogram(OVERHEAD_BUCKETS)
            o.observe(trace.overhead_s)

    def settled(self, model: str, prompt_tokens: int, completion_tokens: int, charged_msat: int) -> None:
        self.prompt_tokens[model] = self.prompt_tokens.get(model, 0) + prompt_tokens
        self.completion_tokens[model] = self.completion_tokens.get(model, 0) + completion_tokens
        self.charged_msat[model] = self.charged_msat.get(model, 0) + charged_msat

    def upstream_error(self, provider: str, kind: str) -> None:
        """``kind``: connect, timeout, http_<status>, invalid_answer, stream_cut."""
        key = (provider, kind)
        self.upstream_errors[key] = self.upstream_errors.get(key, 0) + 1


METRICS: web.AppKey[NodeMetrics] = web.AppKey("metrics", NodeMetrics)


def route_name(request: web.Request) -> str:
    """The matched route's pattern (``/lightning/invoice/{invoice_id}/status``), never the path: a
    path can hold a secret handle, and a label must take few values."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def unreachable_kind(error: BaseException) -> str:
    """``timeout`` or ``connect`` for an upstream call that got no answer. The upstream client raises
    its UpstreamError ``from None`` inside the handler of the original error, which stays its context."""
    return "timeout" if isinstance(error.__context__, TimeoutError) else "connect"
