"""Payouts and foreign mints never reach into the operator's network (issue 14, item 3).

A real ``routstr serve`` (SQLite and PostgreSQL), funded by the real test mint. An "internal service"
on 127.0.0.1 records every connection made to it; a refund to a Lightning address or LNURL there,
a callback pointing there from an allowed first hop, a key expiring with it as its refund address,
and a token naming it as its mint all leave it untouched, fail in the same words whether its port
is open or closed, and cost the key nothing; the books stay right.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import aiohttp
import bech32
import pytest

from routstr.cashu.tokens import decode_token, encode_token_v4
from routstr.devtools.nutshell import free_port
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.wallet.expiry import pay_out_expired
from tests.conftest import Upstream, chat_body, running_node
from tests.net.loopback import first_hop, listening
from tests.node.node_process import NodeProcess, assert_audit_passes, balance_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _lnurl(url: str) -> str:
    data: Any = bech32.convertbits(url.encode(), 8, 5)
    return str(bech32.bech32_encode("lnurl", data)).upper()


async def _refund(
    http: aiohttp.ClientSession, node: NodeProcess, key: str, how: str, destination: str
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"}
    if how == "header":
        kw: dict[str, Any] = {"headers": {**headers, "Refund-LNURL": destination}}
    else:
        kw = {"headers": headers, "json": {how: destination}}
    async with http.post(node.url + "/v1/balance/refund", **kw) as r:
        return r.status, (await r.json())["error"]


async def test_refunds_never_call_a_private_address(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    async with listening() as internal, first_hop() as hop:
        closed = free_port()
        # plain http and this one loopback server allowed: a stand-in for a public LNURL server
        node_proc.env.update(LNURL_ALLOW_HTTP="true", LNURL_ALLOW_PRIVATE=f"127.0.0.1:{hop.port}")
        await asyncio.to_thread(node_proc.start)
        async with http.post(
            node_proc.url + "/v1/balance/create", json={"cashu_token": await wallet.asend(mint_url, 60)}
        ) as r:
            key = (await r.json())["api_key"]
        answers: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for port in (internal.port, closed):
            hop.callbacks[f"to{port}"] = f"http://127.0.0.1:{port}/cb?secret=1"
            answers[port] = [
                await _refund(http, node_proc, key, "header", f"alice@127.0.0.1:{port}"),
                await _refund(http, node_proc, key, "lightning_address", f"alice@127.0.0.1:{port}"),
                await _refund(http, node_proc, key, "lnurl", _lnurl(f"http://127.0.0.1:{port}/p/alice")),
                await _refund(http, node_proc, key, "lnurl", _lnurl(f"http://localhost:{port}/p/alice")),
                # the first hop may be called; the callback it names may not
                await _refund(http, node_proc, key, "header", hop.address(f"to{port}")),
                await _refund(http, node_proc, key, "destination", hop.address(f"to{port}")),
            ]
        assert internal.connections == 0
        assert hop.asked == [f"to{internal.port}"] * 2 + [f"to{closed}"] * 2  # the test reached the node
        # open or closed, the same answer, in the node's words
        assert answers[internal.port] == answers[closed]
        for status, error in answers[closed]:
            assert status == 400 and error["code"] == "destination_not_allowed", error
            assert "127.0.0.1" not in error["message"] and str(closed) not in error["message"]
        info = await balance_of(http, node_proc, key)
        assert info["balance"] == 60_000 and info["reserved"] == 0  # a refused payout costs nothing
    node_proc.stop()
    await assert_audit_passes(node_proc)


async def test_a_token_naming_a_private_mint_is_refused_untouched(
    node_proc: NodeProcess, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession
):
    async with listening() as internal:
        closed = free_port()
        node_proc.env.update(FOREIGN_MINT_MAX_SATS="100", FOREIGN_MINT_ALLOW_HTTP="true")
        await asyncio.to_thread(node_proc.start)
        real = await wallet.asend(mint_url, 20)
        answers: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for port in (internal.port, closed):
            forged = encode_token_v4(dataclasses.replace(decode_token(real), mint=f"http://127.0.0.1:{port}"))
            answers[port] = []
            async with http.get(
                node_proc.url + "/v1/balance/info", headers={"Authorization": f"Bearer {forged}"}
            ) as r:
                answers[port].append((r.status, (await r.json())["error"]))
            async with http.post(
                node_proc.url + "/v1/chat/completions", json=chat_body(), headers={"X-Cashu": forged}
            ) as r:
                answers[port].append((r.status, (await r.json())["error"]))
        assert internal.connections == 0
        assert answers[internal.port] == answers[closed]
        for status, error in answers[closed]:
            assert status == 400 and error["code"] == "mint_not_accepted", error
            assert str(closed) not in error["message"]
        assert set(await wallet.acheck(real)) == {"UNSPENT"}
    node_proc.stop()
    await assert_audit_passes(node_proc)


async def test_an_expiring_key_keeps_its_balance_rather_than_call_a_private_address(
    backend: str, wallet: TestWallet, mint_url: str, fake_upstream: Upstream, tmp_path: Path
):
    async with listening() as internal, first_hop() as hop:
        hop.callbacks["cb"] = f"http://127.0.0.1:{internal.port}/cb"
        env = {"LNURL_ALLOW_HTTP": "true", "LNURL_ALLOW_PRIVATE": f"127.0.0.1:{hop.port}"}
        async with (
            running_node(backend, mint_url, fake_upstream, tmp_path, **env) as node,
            aiohttp.ClientSession() as http,
        ):
            expiry = str(int(time.time()) + 2)
            keys = []
            for address in (f"alice@127.0.0.1:{internal.port}", hop.address("cb")):
                token = await wallet.asend(mint_url, 30)
                terms = {"Refund-LNURL": address, "Key-Expiry-Time": expiry}
                async with http.post(
                    node.v1 + "/balance/create", json={"cashu_token": token}, headers=terms
                ) as r:
                    keys.append({"Authorization": f"Bearer {(await r.json())['api_key']}"})
            await asyncio.sleep(max(0.0, int(expiry) + 0.1 - time.time()))
            # refused for good: the expiry ends and the balance stays on the key, refundable
            assert await pay_out_expired(node.db, node.app[NODE].payouts) == {"kept": 2}
            assert await pay_out_expired(node.db, node.app[NODE].payouts) == {}
            for key in keys:
                async with http.get(node.v1 + "/balance/info", headers=key) as r:
                    assert (await r.json())["balance"] == 30_000
                await node.assert_books_balance(await node.app[NODE].auth.key_id(key["Authorization"][7:]))
        assert internal.connections == 0 and hop.asked == ["cb"]
