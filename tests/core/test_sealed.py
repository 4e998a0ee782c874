"""Sealed secrets: they open with the same node secret and purpose only, and detect tampering."""

from __future__ import annotations

import pytest

from routstr.core.sealed import SealError, seal, unseal

SECRET = b"\x01" * 32


def test_round_trip_and_fresh_nonce_each_time():
    a = seal(SECRET, "webhook", "whsec_abc")
    b = seal(SECRET, "webhook", "whsec_abc")
    assert a != b and a.startswith("v1:") and "whsec_abc" not in a
    assert unseal(SECRET, "webhook", a) == unseal(SECRET, "webhook", b) == "whsec_abc"


@pytest.mark.parametrize(
    ("secret", "purpose"),
    [(b"\x02" * 32, "webhook"), (SECRET, "provider-key")],
    ids=["other-node", "other-purpose"],
)
def test_does_not_open_elsewhere(secret: bytes, purpose: str):
    with pytest.raises(SealError):
        unseal(secret, purpose, seal(SECRET, "webhook", "whsec_abc"))


def test_any_altered_character_is_detected():
    sealed = seal(SECRET, "webhook", "whsec_abc")
    body = sealed[3:]
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    for bad in ("v1:" + flipped, sealed[:-2], "plain-text", "v1:!!!"):
        with pytest.raises(SealError):
            unseal(SECRET, "webhook", bad)
