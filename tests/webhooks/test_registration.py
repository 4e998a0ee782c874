"""The body of POST /v1/webhooks."""

from __future__ import annotations

from typing import Any

import pytest

from routstr.core.errors import InvalidRequest
from routstr.webhooks.registration import DEFAULT_LOW_BALANCE_MSAT, parse_registration

URL = "https://hooks.example.com/routstr"


def test_a_full_registration():
    r = parse_registration(
        {
            "url": URL,
            "events": ["key.expired", "balance.low", "balance.low"],
            "secret": "whsec_abcdef",
            "low_balance_sats": 250,
        }
    )
    assert r.events == ("balance.low", "key.expired")  # sorted, once each
    assert r.low_balance_msat == 250_000 and r.secret == "whsec_abcdef" and r.url == URL
    assert (
        parse_registration(
            {"url": URL, "events": ["balance.low"], "secret": "x" * 8, "low_balance_msat": 1500}
        ).low_balance_msat
        == 1500
    )


def test_threshold_defaults_to_1000_sats_and_only_with_balance_low():
    assert DEFAULT_LOW_BALANCE_MSAT == 1_000_000
    r = parse_registration({"url": URL, "events": ["balance.low"], "secret": "x" * 8})
    assert r.low_balance_msat == DEFAULT_LOW_BALANCE_MSAT
    assert (
        parse_registration({"url": URL, "events": ["key.expired"], "secret": "x" * 8}).low_balance_msat
        is None
    )


@pytest.mark.parametrize(
    "body, param",
    [
        ({"events": ["balance.low"], "secret": "x" * 8}, "url"),
        ({"url": URL, "secret": "x" * 8}, "events"),
        ({"url": URL, "events": [], "secret": "x" * 8}, "events"),
        ({"url": URL, "events": "balance.low", "secret": "x" * 8}, "events"),
        ({"url": URL, "events": ["balance.low", "payment.received"], "secret": "x" * 8}, "events"),
        ({"url": URL, "events": ["balance.low"]}, "secret"),
        ({"url": URL, "events": ["balance.low"], "secret": "short"}, "secret"),
        ({"url": URL, "events": ["balance.low"], "secret": "x" * 257}, "secret"),
        ({"url": URL, "events": ["balance.low"], "secret": 12345678}, "secret"),
        (
            {"url": URL, "events": ["balance.low"], "secret": "x" * 8, "low_balance_sats": 0},
            "low_balance_sats",
        ),
        (
            {"url": URL, "events": ["balance.low"], "secret": "x" * 8, "low_balance_sats": True},
            "low_balance_sats",
        ),
        (
            {"url": URL, "events": ["balance.low"], "secret": "x" * 8, "low_balance_msat": 1.5},
            "low_balance_msat",
        ),
        (
            {
                "url": URL,
                "events": ["balance.low"],
                "secret": "x" * 8,
                "low_balance_sats": 1,
                "low_balance_msat": 1,
            },
            "low_balance_sats",
        ),
        (
            {"url": URL, "events": ["key.expired"], "secret": "x" * 8, "low_balance_sats": 5},
            "low_balance_sats",
        ),
        (
            {"url": URL, "events": ["balance.low"], "secret": "x" * 8, "low_balance_sats": 10**20},
            "low_balance_sats",
        ),
    ],
)
def test_bad_bodies_name_the_field(body: dict[str, Any], param: str):
    with pytest.raises(InvalidRequest) as e:
        parse_registration(body)
    assert e.value.status == 400 and e.value.details["param"] == param


def test_unknown_events_are_listed():
    with pytest.raises(InvalidRequest) as e:
        parse_registration({"url": URL, "events": ["balance.low", "a.b", "c"], "secret": "x" * 8})
    assert e.value.details["unknown"] == ["a.b", "c"]
