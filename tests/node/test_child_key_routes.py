"""Child keys on the balance routes: what a child sees, what it may not do with its parent's money,
and keys created with a limit (``POST /v1/balance/create`` with ``balance_limit``, as Routstr Core's).

A child key spends its parent's balance within a limit; it never takes that balance away (refund,
Lightning payout, donate: 403), its top-ups go to the balance it spends, and balance info shows
what it may spend. The books are audited after each test.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from routstr.devtools.test_wallet import TestWallet
from tests.conftest import NodeHandle, Upstream, _backends, chat_body, running_node
from tests.node.test_child_keys import FEE, assert_books, call, parent_key

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=_backends())
async def node(
    request: pytest.FixtureRequest,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[NodeHandle]:
    tmp = tmp_path_factory.mktemp(f"child-key-routes-{request.param}")
    async with running_node(request.param, mint_url, fake_upstream, tmp, CHILD_KEY_COST_MSATS=str(FEE)) as n:
        yield n


async def info(http: aiohttp.ClientSession, url: str, key: str) -> dict[str, Any]:
    async with http.get(url + "/v1/wallet/info", headers={"Authorization": f"Bearer {key}"}) as r:
        body: dict[str, Any] = await r.json()
        assert r.status == 200, body
        return body


async def test_a_child_sees_what_it_may_spend_and_cannot_take_its_parents_money(
    node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint_url: str
):
    parent = await parent_key(node, http, wallet, mint_url, 100)
    status, made, _ = await call(http, node.v1 + "/balance/child-key", parent, {"balance_limit": 30_000})
    assert status == 200, made
    (child,) = made["api_keys"]
    parent_balance = made["parent_balance"]

    seen = await info(http, node.url, child)
    assert seen["api_key"] == child and seen["is_child"] is True
    assert seen["balance_limit"] == 30_000 and seen["balance"] == min(30_000, parent_balance)
    assert (await info(http, node.url, parent))["is_child"] is False

    # refund, payout, donate, webhooks: the parent's, never the child's
    for path, body in (
        ("/balance/refund", None),
        ("/wallet/refund", {"lightning_address": "someone@example.com"}),
        ("/wallet/donate", None),
        ("/webhooks", {"url": "https://example.com/hook", "secret": "s" * 32}),
    ):
        status, err, _ = await call(http, node.v1 + path, child, body)
        assert status == 403 and err["error"]["code"] == "child_key_not_allowed", (path, err)
    assert (await info(http, node.url, parent))["balance"] == parent_balance

    # a child's top-up goes to the balance it spends: its parent's
    status, topped, _ = await call(
        http, node.v1 + "/wallet/topup", child, {"cashu_token": await wallet.asend(mint_url, 20)}
    )
    assert status == 200 and topped["msats"] == 20_000, topped
    assert (await info(http, node.url, parent))["balance"] == parent_balance + 20_000

    # ... also over Lightning (else it would sit on the child's own row, which nothing can spend or
    # refund): the test mint's FakeWallet pays the invoice at the first look
    auth = {"Authorization": f"Bearer {child}"}
    inv_body = {"amount_sats": 30, "purpose": "topup"}
    async with http.post(node.url + "/lightning/invoice", json=inv_body, headers=auth) as r:
        inv = await r.json()
        assert r.status == 200, inv
    async with http.get(node.url + f"/lightning/invoice/{inv['invoice_id']}/status") as r:
        paid = await r.json()
        assert paid["status"] == "paid", paid
    assert (await info(http, node.url, parent))["balance"] == parent_balance + 50_000
    await assert_books(node)


async def test_a_key_created_with_a_limit_spends_its_own_balance_within_it(
    node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint_url: str
):
    until = int(time.time()) + 3600
    body = {
        "initial_balance_token": await wallet.asend(mint_url, 100),
        "balance_limit": 5_000,
        "balance_limit_reset": "daily",
        "validity_date": until,
    }
    status, made, _ = await call(http, node.v1 + "/balance/create", None, body)
    assert status == 201, made
    key = made["api_key"]
    assert made["balance_limit"] == 5_000 and made["validity_date"] == until and made["balance"] == 5_000
    status, answer, headers = await call(http, node.v1 + "/chat/completions", key, chat_body(max_tokens=20))
    assert status == 200, answer
    cost = int(headers["X-Routstr-Cost-Msats"])
    seen = await info(http, node.url, key)
    assert seen["balance_limit_spent"] == cost and seen["balance"] == 5_000 - cost
    assert seen["is_child"] is False  # its own balance, within its own limit
    # a bad limit is refused before the token is used: the token still works afterwards
    token = await wallet.asend(mint_url, 10)
    bad = {"cashu_token": token, "balance_limit_reset": "hourly", "balance_limit": 1}
    status, err, _ = await call(http, node.v1 + "/balance/create", None, bad)
    assert status == 400 and err["error"]["details"]["param"] == "balance_limit_reset", err
    status, made, _ = await call(http, node.v1 + "/balance/create", None, {"cashu_token": token})
    assert status == 201 and made["balance"] == 10_000
    await assert_books(node)
