"""Fixtures of the discovery tests: a real Nostr relay on loopback (see ``support``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.discovery.support import Relay


@pytest.fixture(scope="session")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """One relay for the session; each test signs with a key of its own, so none sees another's."""
    r = Relay(tmp_path_factory.mktemp("relay"))
    r.start()
    try:
        yield r
    finally:
        r.stop()
