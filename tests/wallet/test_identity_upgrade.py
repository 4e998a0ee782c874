"""Tokens redeemed by a node from before issue 14 keep working after the upgrade, and only for
their holder; the proofs the old node kept are wiped (``routstr.wallet.identity_upgrade``).

The old rows are made the way the old node made them: a real token is redeemed, then its key and
swap are put back under the secrets-only identity with the proofs kept, and the upgrade marker
removed. A node started on that database must re-key them at start.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from sqlalchemy import delete, select, update

from routstr.app import create_app
from routstr.cashu.identity import legacy_token_identity, token_identity
from routstr.cashu.tokens import decode_token, encode_token_v3, encode_token_v4
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage.schema import api_keys, node_settings, swaps
from routstr.wallet.identity_upgrade import DONE_SETTING, upgrade_token_identities
from tests.conftest import NodeHandle, Upstream, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")

G = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"


async def _make_legacy(node: NodeHandle, token: str) -> tuple[str, str]:
    """Put the redeemed token's rows back as an old node left them; returns (old, new) identity."""
    secret = node.app[NODE].auth.secret
    t = decode_token(token)
    new = token_identity(secret, t)
    old = legacy_token_identity(secret, t.mint, [p.secret for p in t.proofs])
    inputs = orjson.dumps([p.to_input_dict() for p in t.proofs]).decode()
    async with node.db.write() as conn:
        await conn.execute(
            update(swaps).where(swaps.c.token_hash == new).values(token_hash=old, inputs=inputs)
        )
        await conn.execute(update(api_keys).where(api_keys.c.key_hash == new).values(key_hash=old))
        await conn.execute(delete(node_settings).where(node_settings.c.name == DONE_SETTING))
    return old, new


async def _info(http: aiohttp.ClientSession, url: str, bearer: str) -> tuple[int, dict[str, object]]:
    async with http.get(url + "/v1/balance/info", headers={"Authorization": f"Bearer {bearer}"}) as r:
        return r.status, await r.json()


async def test_old_token_rows_are_rekeyed_at_start_and_open_only_for_their_holder(
    backend: str, mint_url: str, wallet: TestWallet, fake_upstream: Upstream, tmp_path: Path
) -> None:
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path) as node,
        aiohttp.ClientSession() as http,
    ):
        token = await wallet.asend(mint_url, 64)
        status, before = await _info(http, node.url, token)
        assert status == 200 and before["balance"] == 64_000
        old, new = await _make_legacy(node, token)

        # a second node process on the same database: it re-keys at start
        second = create_app(node.settings)
        runner = web.AppRunner(second, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with node.db.read() as conn:
                rows = (await conn.execute(select(swaps.c.token_hash, swaps.c.inputs))).all()
                keys = {r[0] for r in (await conn.execute(select(api_keys.c.key_hash))).all()}
            assert [(h, i) for h, i in rows if h in (old, new)] == [(new, "[]")]
            assert new in keys and old not in keys

            # the holder's token, in another encoding (not the first node's cache): the same balance
            again = encode_token_v3(decode_token(token))
            status, after = await _info(http, url, again)
            assert status == 200 and after["balance"] == 64_000

            # its secrets with made-up signatures: nothing
            forged = decode_token(token)
            forged = replace(forged, proofs=[replace(p, C=G, amount=1, dleq=None) for p in forged.proofs])
            status, body = await _info(http, url, encode_token_v4(forged))
            assert status == 400 and "error" in body

            # once done, never again (the marker is kept; a second run changes nothing)
            assert await upgrade_token_identities(node.db, node.app[NODE].auth.secret) == 0
        finally:
            await runner.cleanup()
