"""The publisher against a real relay (PyPI ``nostr-relay`` on loopback), read back with
``nostr-tools``: first publication, the daily renewal replacing it, an unreachable relay retried with
backoff without holding up the others, and a relay's refusal."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from routstr.devtools.nutshell import free_port
from routstr.discovery.announcement import Listing, build_event
from routstr.discovery.keys import NostrKey, derive_key
from routstr.discovery.publisher import RENEW_S, Publisher
from routstr.discovery.relay import RelayRejected, RelayUnreachable, publish
from tests.discovery.support import Relay, fetch_announcements
from tests.discovery.vectors import nip01_id, npub_of, schnorr_valid

pytestmark = pytest.mark.asyncio(loop_scope="session")

LISTING = Listing(
    "routstr", "https://node.example.com", "", ("https://mint.example.com",), "0.1.0", "test", "about"
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture(loop_scope="session")
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _fresh_key() -> NostrKey:
    return derive_key(os.urandom(32))  # a key of this test's own: the shared relay holds others' events


async def _fetched(relay: Relay, pubkey: str) -> list[dict[str, Any]]:
    return await asyncio.to_thread(fetch_announcements, relay.url, pubkey)


async def test_published_then_renewed_after_24h_and_the_relay_keeps_only_the_newest(
    relay: Relay, session: aiohttp.ClientSession
) -> None:
    key, clock = _fresh_key(), Clock(1_800_000_000.0)
    publisher = Publisher((relay.url,), LISTING, key, session, clock=clock)

    await publisher.publish_due()
    [first] = await _fetched(relay, key.public_hex)
    assert first["verified"] is True and first["npub"] == key.npub == npub_of(key.public_hex)
    assert first["event"]["created_at"] == 1_800_000_000
    assert first["event"]["tags"] == LISTING.tags()
    assert publisher.schedule[relay.url].next_at == clock.now + RENEW_S

    clock.now += RENEW_S - 1  # not due yet: nothing is sent
    await publisher.publish_due()
    [same] = await _fetched(relay, key.public_hex)
    assert same["event"]["id"] == first["event"]["id"]

    clock.now += 1
    await publisher.publish_due()
    [renewed] = await _fetched(relay, key.public_hex)  # replaceable: the old one is gone
    assert renewed["verified"] is True
    assert renewed["event"]["created_at"] == 1_800_000_000 + int(RENEW_S)
    assert renewed["event"]["id"] != first["event"]["id"]
    assert renewed["event"]["id"] == nip01_id(renewed["event"]) and schnorr_valid(renewed["event"])


async def test_an_unreachable_relay_is_retried_with_backoff_and_does_not_hold_up_the_others(
    relay: Relay, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    dead = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    key, clock = _fresh_key(), Clock(1_800_000_000.0)
    publisher = Publisher((dead, relay.url), LISTING, key, session, clock=clock, timeout_s=5)
    with caplog.at_level(logging.WARNING, logger="routstr.discovery.publisher"):
        await publisher.publish_due()
    assert len(await _fetched(relay, key.public_hex)) == 1
    assert publisher.schedule[relay.url].failures == 0
    assert (publisher.schedule[dead].failures, publisher.schedule[dead].next_at) == (1, clock.now + 30)
    [warning] = [r.getMessage() for r in caplog.records]
    assert f"not stored on {dead}" in warning and "attempt 1; next in 30 s" in warning

    clock.now += 30  # only the dead relay is due; it fails again and waits twice as long
    await publisher.publish_due()
    assert (publisher.schedule[dead].failures, publisher.schedule[dead].next_at) == (2, clock.now + 60)
    assert publisher.schedule[relay.url].next_at == clock.now - 30 + RENEW_S

    # the relay comes up where the dead one was: the next due round stores the event there too
    late = Relay(tmp_path / "late")
    late.port, late.url = int(dead.rsplit(":", 1)[1]), dead
    await asyncio.to_thread(late.start)
    try:
        clock.now += 60
        await publisher.publish_due()
        assert publisher.schedule[dead].failures == 0
        [stored] = await _fetched(late, key.public_hex)
        assert stored["verified"] is True and stored["event"]["created_at"] == int(clock.now)
    finally:
        await asyncio.to_thread(late.stop)


async def test_a_relay_refusal_is_a_definite_answer_and_nothing_is_stored(
    relay: Relay, session: aiohttp.ClientSession
) -> None:
    key = _fresh_key()
    event = build_event(LISTING, key, 1_800_000_000)
    forged = {**event, "content": '{"name":"someone else","about":""}'}
    forged["id"] = nip01_id(forged)  # a consistent id, but the signature is for the other content
    with pytest.raises(RelayRejected) as e:
        await publish(session, relay.url, forged, timeout_s=10)
    assert "refused by the relay" in str(e.value)
    assert await _fetched(relay, key.public_hex) == []
    assert await publish(session, relay.url, event, timeout_s=10) == ""  # the genuine one is taken
    # sent again: this relay answers OK false "duplicate: exists", which NIP-01 makes a success
    assert (await publish(session, relay.url, event, timeout_s=10)).startswith("duplicate:")
    assert [f["event"]["id"] for f in await _fetched(relay, key.public_hex)] == [event["id"]]


async def test_a_server_that_is_not_a_relay_is_unreachable_not_an_exception_of_another_kind(
    session: aiohttp.ClientSession,
) -> None:
    from aiohttp import web

    async def plain(_: web.Request) -> web.Response:
        return web.Response(text="not a websocket")

    app = web.Application()
    app.router.add_get("/", plain)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with pytest.raises(RelayUnreachable) as e:
            await publish(session, f"ws://127.0.0.1:{port}/", build_event(LISTING, _fresh_key(), 1), 5)
        assert "cannot reach the relay" in str(e.value)
    finally:
        await runner.cleanup()
