"""Prometheus families built at scrape time from the node's plain counters (``counters.py``).

A private ``CollectorRegistry`` per scrape: nothing global, nothing registered twice, and the hot
path never touches a prometheus_client object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from routstr.core.books import MintBooks
from routstr.metrics.counters import NodeMetrics
from routstr.metrics.histogram import Histogram


@dataclass(frozen=True)
class Readings:
    """Everything one scrape shows, gathered by the HTTP edge (the books come from the database)."""

    metrics: NodeMetrics
    in_flight: int  # requests of this process between reserve and settle
    mint_errors: Mapping[tuple[str, str], int]  # (mint, kind) -> failed calls
    mint_up: Mapping[str, bool]
    provider_available: Mapping[str, bool]  # False while its connection breaker holds it back
    books: Sequence[MintBooks]
    books_age_s: float  # how old the books figures are (they are cached for a few seconds)
    version: str


class NodeCollector(Collector):
    def __init__(self, readings: Readings) -> None:
        self.r = readings

    def collect(self) -> Iterator[Metric]:
        m = self.r.metrics
        info = GaugeMetricFamily("routstr_info", "The node's version", labels=["version"])
        info.add_metric([self.r.version], 1)
        yield info

        requests = CounterMetricFamily(
            "routstr_requests",
            "Answers by endpoint (a billed family, or the route of any other), model (empty until a "
            "provider accepted the request) and HTTP status",
            labels=["endpoint", "model", "status"],
        )
        for (endpoint, model, status), n in sorted(m.requests.items()):
            requests.add_metric([endpoint, model, str(status)], n)
        yield requests
        yield _histograms(
            "routstr_request_duration_seconds",
            "Time from the request entering the node to the end of its answer (a stream's last byte)",
            m.latency,
        )
        yield _histograms(
            "routstr_overhead_seconds",
            "Billed requests: the node's own time (X-Routstr-Overhead-Ms), without the wait for the "
            "upstream; for a stream, until its headers went out",
            m.overhead,
        )

        tokens = CounterMetricFamily("routstr_tokens", "Tokens billed, by model", labels=["model", "kind"])
        for model, n in sorted(m.prompt_tokens.items()):
            tokens.add_metric([model, "prompt"], n)
        for model, n in sorted(m.completion_tokens.items()):
            tokens.add_metric([model, "completion"], n)
        yield tokens
        charged = CounterMetricFamily("routstr_charged_msat", "msat charged, by model", labels=["model"])
        for model, n in sorted(m.charged_msat.items()):
            charged.add_metric([model], n)
        yield charged
        yield GaugeMetricFamily(
            "routstr_reservations_in_flight",
            "Requests of this process holding a reservation (between reserve and settle)",
            value=self.r.in_flight,
        )

        upstream = CounterMetricFamily(
            "routstr_upstream_errors",
            "Failed upstream calls by provider and kind: connect, timeout, http_<status>, "
            "invalid_answer, stream_cut",
            labels=["provider", "kind"],
        )
        for (provider, kind), n in sorted(m.upstream_errors.items()):
            upstream.add_metric([provider, kind], n)
        yield upstream
        available = GaugeMetricFamily(
            "routstr_provider_available",
            "1 unless the provider is cooling down after failures",
            labels=["provider"],
        )
        for name, ok in sorted(self.r.provider_available.items()):
            available.add_metric([name], int(ok))
        yield available

        mint_errors = CounterMetricFamily(
            "routstr_mint_errors",
            "Failed mint calls by mint and kind: unavailable (no usable answer) or rejected (a definite "
            'error answer); mints not in CASHU_MINTS count as mint="foreign"',
            labels=["mint", "kind"],
        )
        for (mint, kind), n in sorted(self.r.mint_errors.items()):
            mint_errors.add_metric([mint, kind], n)
        yield mint_errors
        up = GaugeMetricFamily("routstr_mint_up", "1 if the last check found the mint up", labels=["mint"])
        for mint, ok in sorted(self.r.mint_up.items()):
            up.add_metric([mint], int(ok))
        yield up
        yield from self._books()

    def _books(self) -> Iterator[Metric]:
        labels = ["mint", "unit"]
        wallet = GaugeMetricFamily("routstr_wallet_msat", "eCash the node holds", labels=labels)
        owed = GaugeMetricFamily(
            "routstr_liabilities_msat",
            "What users can claim: key balances, reservations, refunds and payouts in flight",
            labels=labels,
        )
        surplus = GaugeMetricFamily(
            "routstr_surplus_msat", "The node's own money (wallet minus liabilities)", labels=labels
        )
        reserved = GaugeMetricFamily(
            "routstr_reserved_msat", "Reservations of requests in flight, all processes", labels=labels
        )
        pending = GaugeMetricFamily(
            "routstr_pending_swaps", "Mint operations not finished yet", labels=labels
        )
        uncollected = GaugeMetricFamily(
            "routstr_uncollected_tokens", "Change and refund tokens made but never collected", labels=labels
        )
        for b in self.r.books:
            key = [b.mint_url, b.unit]
            wallet.add_metric(key, b.wallet_msat)
            owed.add_metric(key, b.owed_msat)
            surplus.add_metric(key, b.surplus_msat)
            reserved.add_metric(key, b.reserved_msat)
            pending.add_metric(key, b.pending_swaps)
            uncollected.add_metric(key, b.uncollected_tokens)
        yield from (wallet, owed, surplus, reserved, pending, uncollected)
        yield GaugeMetricFamily(
            "routstr_books_age_seconds", "Age of the books figures above (cached)", value=self.r.books_age_s
        )


def _histograms(name: str, doc: str, by_endpoint: Mapping[str, Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["endpoint"])
    for endpoint, h in sorted(by_endpoint.items()):
        buckets = [(_le(bound), float(n)) for bound, n in h.cumulative()]
        family.add_metric([endpoint], buckets, h.total)
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def render(readings: Readings) -> bytes:
    """The Prometheus text exposition of one scrape, with this process's CPU, memory and fds."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(readings))
    ProcessCollector(registry=registry)
    return generate_latest(registry)
