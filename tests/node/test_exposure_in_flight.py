"""``MINT_MAX_EXPOSURE_SATS`` holds under concurrent redemptions (issue 14, item 5): twenty tokens
redeemed at once must not all pass a check that counted only the proofs already in the wallet."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from routstr.cashu.tokens import decode_token
from routstr.devtools.test_wallet import TestWallet
from tests.conftest import PRICING, Upstream, fresh_database, node_env
from tests.node.node_process import NodeProcess, assert_audit_passes

pytestmark = pytest.mark.asyncio(loop_scope="session")

CAP_SATS, TOKEN_SATS, TOKENS = 100, 10, 20


async def test_twenty_concurrent_redemptions_respect_the_exposure_cap(
    backend: str, tmp_path: Path, wallet: TestWallet, mint_url: str, fake_upstream: Upstream
) -> None:
    pricing = tmp_path / "pricing.toml"
    pricing.write_text(PRICING)
    tokens = [await wallet.asend(mint_url, TOKEN_SATS) for _ in range(TOKENS)]
    async with fresh_database(backend, tmp_path) as db_url:
        env = node_env(mint_url, fake_upstream.url, db_url, pricing, MINT_MAX_EXPOSURE_SATS=str(CAP_SATS))
        node = NodeProcess(env, tmp_path / "node.log")
        await asyncio.to_thread(node.start)
        try:
            async with aiohttp.ClientSession() as http:

                async def create(token: str) -> tuple[int, str]:
                    url = node.url + "/v1/balance/create"
                    async with http.post(url, json={"cashu_token": token}) as r:
                        body = await r.json()
                        return r.status, body.get("error", {}).get("code", "")

                answers = await asyncio.gather(*(create(t) for t in tokens))
            credited = [t for t, (status, _) in zip(tokens, answers, strict=True) if status == 201]
            refused = [t for t, (status, _) in zip(tokens, answers, strict=True) if status != 201]
            assert len(credited) * TOKEN_SATS <= CAP_SATS, answers
            assert len(credited) == CAP_SATS // TOKEN_SATS, answers  # the cap, not fewer
            assert all(a == (503, "mint_exposure_limit") for a in answers if a[0] != 201), answers
            for token in refused:  # a refused token is untouched: its owner can spend it elsewhere
                assert await wallet.acheck(token) == ["UNSPENT"] * len(decode_token(token).proofs)
            await assert_audit_passes(node)
        finally:
            node.stop()
