"""A real ``routstr serve`` fleet (two processes, one database) announces the node on a real relay:
the event read back with nostr-tools is signed by the key behind ``/v1/info``'s ``npub``, carries
every tag and the content the settings say, and only the process holding the job's lease sent it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from routstr import __version__
from tests.conftest import PRICING, Upstream, fresh_database, node_env
from tests.discovery.support import Relay, fetch_announcements
from tests.discovery.vectors import derived_pubkey, nip01_id, npub_of, schnorr_valid
from tests.node.node_process import NodeProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

HTTP_URL = "https://node.example.com"
ONION_URL = "http://routstrtestnode2345routstrtestnode2345routstrtestnode.onion"
STORED = "nostr announcement (kind 38421"


def _stored(logs: list[Path]) -> list[int]:
    """How many times each process logged an announcement stored on a relay."""
    return [log.read_text(errors="replace").count(STORED) for log in logs]


async def _announcements(relay: Relay, pubkey: str, logs: list[Path]) -> list[dict[str, Any]]:
    """Waits (30 s at most) until the announcement is on the relay and both sends are logged."""
    deadline = time.monotonic() + 30
    while True:
        found = await asyncio.to_thread(fetch_announcements, relay.url, pubkey)
        if (found and sum(_stored(logs)) >= 2) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def test_the_node_announces_itself_on_the_relay_once_per_fleet(
    backend: str, tmp_path: Path, mint_url: str, fake_upstream: Upstream, relay: Relay
) -> None:
    secret = f"discovery-test-node-secret-{backend}"  # a key per run: the relay outlives the test
    pricing = tmp_path / "pricing.toml"
    pricing.write_text(PRICING)
    async with fresh_database(backend, tmp_path) as db_url:
        env = node_env(
            mint_url,
            fake_upstream.url,
            db_url,
            pricing,
            SECRET_KEY=secret,  # no NSEC: the key is derived from the node secret
            RELAYS=f"{relay.url},{relay.url}/",  # the same relay twice over: two relays to the node
            HTTP_URL=HTTP_URL,
            ONION_URL=ONION_URL,
            NAME="Discovery test node",
            DESCRIPTION='LLMs for sats: "fast" ⚡',
            PROVIDER_ID="discovery-test",
        )
        logs = [tmp_path / f"node{i}.log" for i in range(2)]
        fleet = [NodeProcess(env, log) for log in logs]
        try:
            for node in fleet:
                await asyncio.to_thread(node.start)
            async with aiohttp.ClientSession() as http:
                infos = []
                for node in fleet:
                    async with http.get(node.url + "/v1/info") as r:
                        assert r.status == 200
                        infos.append(await r.json())
            pubkey = derived_pubkey(secret.encode())
            assert infos[0]["npub"] == infos[1]["npub"] == npub_of(pubkey)  # one key for the fleet
            found = await _announcements(relay, pubkey, logs)
        finally:
            for node in fleet:
                node.stop()

    [got] = found  # one: the relay keeps the newest per (author, d)
    event = got["event"]
    assert got["verified"] is True  # nostr-tools: id and BIP-340 signature
    assert event["id"] == nip01_id(event) and schnorr_valid(event)  # and again, independently
    assert event["kind"] == 38421
    assert event["pubkey"] == pubkey and got["npub"] == infos[0]["npub"]
    assert event["tags"] == [
        ["d", "discovery-test"],
        ["u", HTTP_URL],
        ["u", ONION_URL],
        *(["mint", m] for m in infos[0]["mints"]),
        ["version", __version__],
    ]
    assert infos[0]["mints"] and infos[0]["mints"][0].rstrip("/") == mint_url.rstrip("/")
    assert json.loads(event["content"]) == {
        "name": "Discovery test node",
        "about": 'LLMs for sats: "fast" ⚡',
    }
    # one process (the lease holder) sent it, to both relays; the other took no part
    assert sorted(_stored(logs)) == [0, 2]
    assert all(secret not in log.read_text(errors="replace") for log in logs)
