"""The key behind ``/v1/info``'s ``npub``: ``NSEC`` when set; without ``RELAYS`` nothing is published."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from routstr.discovery.publisher import publisher_for
from routstr.node import NODE
from tests.conftest import Upstream, running_node
from tests.discovery.vectors import SECRET_HEX, npub_of, nsec_of, xonly_pubkey

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_npub_in_info_is_the_nsec_key_and_without_relays_there_is_no_publisher(
    tmp_path: Path, mint_url: str, fake_upstream: Upstream
) -> None:
    secret = bytes.fromhex(SECRET_HEX)
    async with running_node("sqlite", mint_url, fake_upstream, tmp_path, NSEC=nsec_of(secret)) as node:
        async with aiohttp.ClientSession() as http:
            async with http.get(node.v1 + "/info") as r:
                assert r.status == 200
                info = await r.json()
            assert info["npub"] == npub_of(xonly_pubkey(secret))
            assert SECRET_HEX not in str(info) and nsec_of(secret) not in str(info)
            state = node.app[NODE]
            assert node.settings.relays == ()
            assert state.nostr is not None
            assert publisher_for(node.settings, state.nostr, state.mints.urls, http) is None
