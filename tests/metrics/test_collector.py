"""The hot-path counters and the Prometheus text built from them at scrape time."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from routstr.core.books import MintBooks
from routstr.metrics.collector import Readings, render
from routstr.metrics.counters import NodeMetrics, unreachable_kind
from routstr.metrics.histogram import OVERHEAD_BUCKETS, Histogram
from routstr.metrics.trace import OVERHEAD_HEADER, Trace


def scrape(readings: Readings) -> dict[str, list[Sample]]:
    """Family name -> samples, through prometheus_client's own parser."""
    text = render(readings).decode()
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def readings(m: NodeMetrics, **over: object) -> Readings:
    base: dict[str, object] = dict(
        metrics=m,
        in_flight=0,
        mint_errors={},
        mint_up={},
        provider_available={},
        books=[],
        books_age_s=0.0,
        version="9.9.9",
    )
    base.update(over)
    return Readings(**base)  # type: ignore[arg-type]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_histogram_buckets_are_upper_bounds_and_cumulative():
    h = Histogram((0.001, 0.01, 0.1))
    for v in (0.0005, 0.001, 0.002, 0.05, 0.5, 7.0):
        h.observe(v)
    assert h.counts == [2, 1, 1, 2]  # 0.001 itself belongs to le="0.001"
    assert h.cumulative() == [(0.001, 2), (0.01, 3), (0.1, 4), (math.inf, 6)]
    assert h.count == 6 and h.total == pytest.approx(7.5535)


def test_requests_latency_overhead_tokens_and_msat_in_prometheus_text():
    m = NodeMetrics()
    billed = Trace(0.0)
    billed.endpoint, billed.model, billed.overhead_s = "chat_completions", "gpt-4o-mini", 0.0004
    for _ in range(3):
        m.answered(billed, "chat_completions", 200, 0.02)
    refused = Trace(0.0)
    refused.endpoint, refused.overhead_s = "chat_completions", 0.002  # no provider took it: no model
    m.answered(refused, "chat_completions", 402, 0.003)
    m.answered(Trace(0.0), "/v1/models", 200, 0.0015)  # not billed: no overhead
    m.settled("gpt-4o-mini", 10, 5, 1234)
    m.settled("gpt-4o-mini", 1, 2, 100)
    m.upstream_error("openrouter", "http_500")
    m.upstream_error("openrouter", "http_500")
    m.upstream_error("local", "timeout")
    books = [MintBooks("http://mint", "sat", 50, 20_000, 3_000, 0, 1, 7, 2, 0)]
    f = scrape(
        readings(
            m,
            in_flight=4,
            mint_errors={("http://mint", "unavailable"): 3},
            mint_up={"http://mint": False},
            provider_available={"openrouter": True, "local": False},
            books=books,
            books_age_s=1.5,
        )
    )

    req = f["routstr_requests"]
    total = "routstr_requests_total"
    assert value(req, total, endpoint="chat_completions", model="gpt-4o-mini", status="200") == 3
    assert value(req, total, endpoint="chat_completions", model="", status="402") == 1
    assert value(req, total, endpoint="/v1/models", model="", status="200") == 1

    lat = f["routstr_request_duration_seconds"]
    assert value(lat, "routstr_request_duration_seconds_count", endpoint="chat_completions") == 4
    assert value(lat, "routstr_request_duration_seconds_sum", endpoint="chat_completions") == pytest.approx(
        0.063
    )
    bucket = "routstr_request_duration_seconds_bucket"
    assert value(lat, bucket, endpoint="chat_completions", le="0.005") == 1
    assert value(lat, bucket, endpoint="chat_completions", le="0.025") == 4
    assert value(lat, bucket, endpoint="chat_completions", le="+Inf") == 4

    over = f["routstr_overhead_seconds"]
    assert value(over, "routstr_overhead_seconds_count", endpoint="chat_completions") == 4
    assert value(over, "routstr_overhead_seconds_bucket", endpoint="chat_completions", le="0.0005") == 3
    assert not [s for s in over if s.labels.get("endpoint") == "/v1/models"]
    assert len([s for s in over if s.name.endswith("_bucket")]) == len(OVERHEAD_BUCKETS) + 1

    tokens = f["routstr_tokens"]
    assert value(tokens, "routstr_tokens_total", model="gpt-4o-mini", kind="prompt") == 11
    assert value(tokens, "routstr_tokens_total", model="gpt-4o-mini", kind="completion") == 7
    assert value(f["routstr_charged_msat"], "routstr_charged_msat_total", model="gpt-4o-mini") == 1334
    assert value(f["routstr_reservations_in_flight"], "routstr_reservations_in_flight") == 4

    up = f["routstr_upstream_errors"]
    assert value(up, "routstr_upstream_errors_total", provider="openrouter", kind="http_500") == 2
    assert value(up, "routstr_upstream_errors_total", provider="local", kind="timeout") == 1
    avail = f["routstr_provider_available"]
    assert value(avail, "routstr_provider_available", provider="local") == 0
    assert value(avail, "routstr_provider_available", provider="openrouter") == 1
    mint = {"mint": "http://mint"}
    assert value(f["routstr_mint_errors"], "routstr_mint_errors_total", kind="unavailable", **mint) == 3
    assert value(f["routstr_mint_up"], "routstr_mint_up", **mint) == 0

    unit = {"mint": "http://mint", "unit": "sat"}
    assert value(f["routstr_wallet_msat"], "routstr_wallet_msat", **unit) == 50_000
    assert value(f["routstr_liabilities_msat"], "routstr_liabilities_msat", **unit) == 23_000
    assert value(f["routstr_surplus_msat"], "routstr_surplus_msat", **unit) == 27_000
    assert value(f["routstr_reserved_msat"], "routstr_reserved_msat", **unit) == 3_000
    assert value(f["routstr_uncollected_tokens"], "routstr_uncollected_tokens", **unit) == 1
    assert value(f["routstr_pending_swaps"], "routstr_pending_swaps", **unit) == 2
    assert value(f["routstr_books_age_seconds"], "routstr_books_age_seconds") == 1.5
    assert value(f["routstr_info"], "routstr_info", version="9.9.9") == 1
    assert "process_resident_memory_bytes" in f  # the process collector, read at scrape time


def test_an_empty_node_scrapes_cleanly():
    f = scrape(readings(NodeMetrics()))
    assert f["routstr_requests"] == [] and f["routstr_overhead_seconds"] == []
    assert value(f["routstr_reservations_in_flight"], "routstr_reservations_in_flight") == 0


def test_trace_stamps_the_node_time_without_the_upstreams():
    t = Trace()
    t.upstream_s = 3600.0  # more than has passed: never a negative overhead
    headers: dict[str, str] = {}
    t.stamp(headers)  # type: ignore[arg-type]
    assert t.overhead_s == 0.0 and headers[OVERHEAD_HEADER] == "0.000"
    t = Trace(t.start - 0.25)  # entered 250 ms ago, 200 of them waiting for the upstream
    t.upstream_s = 0.2
    t.stamp(headers)  # type: ignore[arg-type]
    assert 0.05 <= t.overhead_s < 0.2
    assert float(headers[OVERHEAD_HEADER]) == pytest.approx(t.overhead_s * 1000, abs=0.001)


def test_endpoint_names_and_unreachable_kinds():
    from routstr.billing.adapter import TABLE

    assert {a.client.name for a in TABLE.values()} == {  # the endpoint label: the client side's name
        "chat_completions", "completions", "responses", "embeddings", "image_generations",
        "audio_transcriptions", "anthropic_messages",
    }  # fmt: skip

    def raised_from(original: Exception) -> Exception:
        try:
            try:
                raise original
            except Exception:
                raise ValueError("the upstream could not be reached") from None
        except ValueError as e:
            return e

    assert unreachable_kind(raised_from(TimeoutError())) == "timeout"
    assert unreachable_kind(raised_from(ConnectionRefusedError())) == "connect"
