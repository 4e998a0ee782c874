"""The body of ``POST /v1/webhooks``, checked: what a key holder may register.

``{"url", "events": ["balance.low", "key.expired"], "secret", "low_balance_sats" | "low_balance_msat"}``.
The URL's destination rules are in ``destinations``; everything else is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routstr.core.errors import InvalidRequest
from routstr.webhooks.payload import BALANCE_LOW, EVENTS

DEFAULT_LOW_BALANCE_MSAT = 1_000 * 1000  # 1,000 sats
MAX_LOW_BALANCE_MSAT = 21_000_000 * 100_000_000 * 1000  # every bitcoin there will be
SECRET_MIN, SECRET_MAX = 8, 256


@dataclass(frozen=True, slots=True)
class Registration:
    url: str
    events: tuple[str, ...]  # sorted, no repeats
    secret: str
    low_balance_msat: int | None  # set only when balance.low is asked for


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest(f"{name} must be a positive whole number", details={"param": name})
    return value


def _threshold(body: dict[str, Any], events: tuple[str, ...]) -> int | None:
    given = [n for n in ("low_balance_msat", "low_balance_sats") if body.get(n) is not None]
    if len(given) > 1:
        raise InvalidRequest(
            "Send low_balance_sats or low_balance_msat, not both", details={"param": given[1]}
        )
    if BALANCE_LOW not in events:
        if given:
            raise InvalidRequest(
                f"{given[0]} only applies to the {BALANCE_LOW} event", details={"param": given[0]}
            )
        return None
    if not given:
        return DEFAULT_LOW_BALANCE_MSAT
    name = given[0]
    msat = _whole(body[name], name) * (1000 if name == "low_balance_sats" else 1)
    if msat > MAX_LOW_BALANCE_MSAT:
        raise InvalidRequest(f"{name} is larger than all the bitcoin there is", details={"param": name})
    return msat


def parse_registration(body: dict[str, Any]) -> Registration:
    url = body.get("url")
    if not isinstance(url, str) or not url.strip():
        raise InvalidRequest('Send the receiver as {"url": "https://…"}', details={"param": "url"})
    raw = body.get("events")
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) for e in raw):
        raise InvalidRequest(
            f"events must be a non-empty list of: {', '.join(EVENTS)}", details={"param": "events"}
        )
    unknown = sorted({e for e in raw if e not in EVENTS})
    if unknown:
        raise InvalidRequest(
            f"Unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}",
            details={"param": "events", "unknown": unknown},
        )
    secret = body.get("secret")
    if not isinstance(secret, str) or not SECRET_MIN <= len(secret) <= SECRET_MAX:
        raise InvalidRequest(
            f"secret must be a string of {SECRET_MIN} to {SECRET_MAX} characters", details={"param": "secret"}
        )
    events = tuple(sorted(set(raw)))
    return Registration(url.strip(), events, secret, _threshold(body, events))
