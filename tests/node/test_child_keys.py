"""Child keys: a key holder hands an agent an sk- key that spends the holder's balance, within a limit.

Real chat requests through a real node (both databases), costs computed by the test from the advertised
price and the fake upstream's usage; the books are audited after each test. The fleet test runs two
``routstr serve`` processes on one PostgreSQL database sharing one child.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from routstr.devtools.fake_llm import expected_usage
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage import accounts, child_store
from routstr.storage.db import Database
from routstr.wallet.audit import audit
from tests.conftest import PRICING, NodeHandle, Upstream, _backends, chat_body, fresh_database, node_env
from tests.conftest import running_node as start_node
from tests.node.node_process import NodeProcess, assert_audit_passes
from tests.pricing_oracle import Prices, advertised_prices

pytestmark = pytest.mark.asyncio(loop_scope="session")
FEE = 1_500  # CHILD_KEY_COST_MSATS of the test node
BODY = chat_body("an agent with a budget", max_tokens=50)


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=_backends())
async def node(
    request: pytest.FixtureRequest,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[NodeHandle]:
    tmp = tmp_path_factory.mktemp(f"child-keys-{request.param}")
    async with start_node(
        request.param, mint_url, fake_upstream, tmp, CHILD_KEY_COST_MSATS=str(FEE), DB_POOL_SIZE="4"
    ) as n:
        yield n


async def call(
    http: aiohttp.ClientSession, url: str, key: str | None, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any], Any]:
    """POST ``body`` as compact JSON (so the test knows the prompt bound: its byte length)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = b"" if body is None else orjson.dumps(body)
    async with http.post(url, data=data, headers=headers) as r:
        return r.status, orjson.loads(await r.read()), r.headers


async def parent_key(
    node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint: str, sats: int
) -> str:
    status, created, _ = await call(
        http, node.v1 + "/balance/create", None, {"cashu_token": await wallet.asend(mint, sats)}
    )
    assert status == 201, created
    return str(created["api_key"])


@dataclass(frozen=True)
class Advertised:
    """gpt-4o-mini's price as ``/v1/models`` advertises it, costs by ``tests/pricing_oracle.py``."""

    price: Prices

    def cost(self, body: dict[str, Any] = BODY) -> int:
        """What the fake upstream's usage for ``body`` costs at this price."""
        u = expected_usage(body)
        return self.price.cost(u["prompt_tokens"], u["completion_tokens"])

    def reservation(self, body: dict[str, Any] = BODY) -> int:
        """What the node holds for it: every byte of the body a prompt token, and its max_tokens."""
        return self.price.reservation(len(orjson.dumps(body)), body["max_tokens"])


async def advertised(http: aiohttp.ClientSession, base: str) -> Advertised:
    price = await advertised_prices(http, base + "/v1", BODY["model"])
    assert price.request == 0
    return Advertised(price)


async def key_id(node: NodeHandle, key: str) -> int:
    return await node.app[NODE].auth.key_id(key)


async def child_info(node: NodeHandle, key: str) -> dict[str, Any]:
    """What balance info shows for a child key (``child_store.limit_fields``)."""
    async with node.db.read() as conn:
        fields = await child_store.limit_fields(conn, await key_id(node, key), accounts.now_ms())
    assert fields is not None
    return fields


async def assert_books(node: NodeHandle) -> None:
    report = await audit(node.db, node.app[NODE].mints)
    assert report.ok, report.problems
    async with node.db.read() as conn:
        assert await child_store.counter_mismatches(conn) == []


async def test_a_child_spends_its_parents_balance_up_to_its_limit(
    node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint_url: str
):
    price = await advertised(http, node.url)
    c, r = price.cost(), price.reservation()
    assert c < r
    limit = r + 2 * c  # three requests fit (each needs r free), a fourth does not
    parent = await parent_key(node, http, wallet, mint_url, 200)
    status, made, _ = await call(
        http,
        node.v1 + "/wallet/child-key",
        parent,
        {"count": 2, "balance_limit": limit, "balance_limit_reset": "daily"},
    )
    assert status == 200, made
    agent, other = made["api_keys"]
    assert agent.startswith("sk-") and other.startswith("sk-") and agent != other != parent
    assert made["count"] == 2 and made["cost_msats"] == 2 * FEE and made["cost_msats_per_key"] == FEE
    assert made["parent_balance"] == 200_000 - 2 * FEE
    assert (made["balance_limit"], made["balance_limit_reset"], made["validity_date"]) == (
        limit,
        "daily",
        None,
    )

    for n in range(1, 4):
        status, answer, headers = await call(http, node.v1 + "/chat/completions", agent, BODY)
        assert status == 200, answer
        assert int(headers["X-Routstr-Cost-Msats"]) == c
        info = await child_info(node, agent)
        assert (
            info["balance_limit_spent"] == n * c
            and info["total_spent"] == n * c
            and info["total_requests"] == n
        )
    status, err, _ = await call(http, node.v1 + "/chat/completions", agent, BODY)
    assert status == 402
    assert err["error"]["type"] == "insufficient_balance" and err["error"]["code"] == "balance_limit_exceeded"
    assert err["error"]["details"]["available"] == limit - 3 * c and err["error"]["details"]["required"] == r
    assert err["error"]["details"]["balance_limit"] == limit
    assert f"balance_limit leaves {limit - 3 * c} msat" in err["error"]["message"]

    parent_row = await node.assert_books_balance(await key_id(node, parent))
    assert parent_row.balance_msat == 200_000 - 2 * FEE - 3 * c and parent_row.reserved_msat == 0
    info = await child_info(node, agent)
    assert info == {
        "balance": limit - 3 * c,
        "reserved": 0,
        "is_child": True,
        "balance_limit": limit,
        "balance_limit_reset": "daily",
        "balance_limit_resets_at": info["balance_limit_resets_at"],
        "balance_limit_spent": 3 * c,
        "validity_date": None,
        "total_spent": 3 * c,
        "total_requests": 3,
    }
    assert info["balance_limit_resets_at"] > time.time()
    # the money moved on the parent's key; the child's own row holds none
    child_row = await node.assert_books_balance(await key_id(node, agent))
    assert (child_row.balance_msat, child_row.reserved_msat, child_row.total_spent_msat) == (0, 0, 0)

    # the other child has a limit of its own (a stream counts as any request); the parent still
    # spends its own balance
    streamed = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    async with http.post(
        node.v1 + "/chat/completions",
        data=orjson.dumps(streamed),
        headers={"Authorization": f"Bearer {other}"},
    ) as resp:
        assert resp.status == 200 and b"[DONE]" in await resp.read()
    assert (await call(http, node.v1 + "/chat/completions", other, BODY))[0] == 200
    assert (await child_info(node, other))["balance_limit_spent"] == 2 * c
    for _ in range(3):
        assert (await call(http, node.v1 + "/chat/completions", parent, BODY))[0] == 200
    parent_row = await node.assert_books_balance(await key_id(node, parent))
    assert parent_row.balance_msat == 200_000 - 2 * FEE - 8 * c
    assert parent_row.total_spent_msat == 2 * FEE + 8 * c

    # the parent resets its child's period: it may spend its whole limit again
    status, reset, _ = await call(http, node.v1 + "/balance/child-key/reset", parent, {"api_key": agent})
    assert status == 200, reset
    assert reset["api_key"] == agent and reset["reset"] is True
    assert reset["balance_limit_spent"] == 0 and reset["balance"] == limit and reset["total_spent"] == 3 * c
    for _ in range(3):
        assert (await call(http, node.v1 + "/chat/completions", agent, BODY))[0] == 200
    assert (await call(http, node.v1 + "/chat/completions", agent, BODY))[0] == 402
    await assert_books(node)


async def test_who_may_make_and_reset_child_keys(
    node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint_url: str
):
    parent = await parent_key(node, http, wallet, mint_url, 5)
    stranger = await parent_key(node, http, wallet, mint_url, 5)
    status, made, _ = await call(http, node.v1 + "/balance/child-key", parent, None)  # no body: one key
    assert status == 200 and made["count"] == 1 and made["balance_limit"] is None
    (child,) = made["api_keys"]
    status, err, _ = await call(http, node.v1 + "/balance/child-key", child, {})
    assert status == 403 and err["error"]["code"] == "child_key_not_allowed"
    for who, target in ((stranger, child), (child, child), (parent, parent), (parent, "sk-" + "0" * 32)):
        status, err, _ = await call(http, node.v1 + "/wallet/child-key/reset", who, {"api_key": target})
        assert status == 404 and err["error"]["code"] == "child_key_not_found", (who, target)
    status, err, _ = await call(http, node.v1 + "/balance/child-key", None, {})
    assert status == 401 and err["error"]["type"] == "authentication_failed"
    # the fee is 1,500 msat a key: 5,000 - 1,500 left, so three more cost more than the balance
    status, err, _ = await call(http, node.v1 + "/balance/child-key", parent, {"count": 3})
    assert status == 402 and err["error"]["details"] == {
        "required": 3 * FEE,
        "available": 3_500,
        "unit": "msat",
    }
    bad = [
        {"count": 0},
        {"count": 101},
        {"count": "2"},
        {"balance_limit": -1},
        {"balance_limit": "1000"},
        {"balance_limit": 1_000, "balance_limit_reset": "hourly"},
        {"balance_limit_reset": "daily"},
        {"validity_date": int(time.time()) - 1},
    ]
    for body in bad:
        status, err, _ = await call(http, node.v1 + "/balance/child-key", parent, body)
        assert status == 400 and err["error"]["details"]["param"] in body, (body, err)
    status, err, _ = await call(http, node.v1 + "/balance/child-key/reset", parent, {"api_key": 5})
    assert status == 400 and err["error"]["details"]["param"] == "api_key"
    parent_row = await node.assert_books_balance(await key_id(node, parent))
    assert parent_row.balance_msat == 5_000 - FEE and parent_row.total_spent_msat == FEE
    sums = await node.ledger_sums(await key_id(node, parent))
    assert sums == {"credit": 5_000, "reserve": FEE, "charge": FEE}  # the fee is the operator's earnings
    await assert_books(node)


async def test_a_child_past_its_validity_date_is_refused(
    node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint_url: str
):
    parent = await parent_key(node, http, wallet, mint_url, 50)
    until = int(time.time()) + 2
    status, made, _ = await call(http, node.v1 + "/balance/child-key", parent, {"validity_date": until})
    assert status == 200 and made["validity_date"] == until
    (child,) = made["api_keys"]
    assert (await call(http, node.v1 + "/chat/completions", child, BODY))[0] == 200
    await asyncio.sleep(max(until + 0.05 - time.time(), 0))  # the node's clock is this one
    status, err, _ = await call(http, node.v1 + "/chat/completions", child, BODY)
    assert status == 401 and err["error"]["code"] == "key_expired"
    assert err["error"]["details"] == {"validity_date": until}
    info = await child_info(node, child)
    assert info["balance"] == 0 and info["validity_date"] == until and info["total_requests"] == 1
    assert (await call(http, node.v1 + "/chat/completions", parent, BODY))[0] == 200
    await assert_books(node)


async def test_thirty_concurrent_requests_on_a_child_limited_to_three(
    node: NodeHandle, http: aiohttp.ClientSession, wallet: TestWallet, mint_url: str
):
    price = await advertised(http, node.url)
    c, r = price.cost(), price.reservation()
    limit = 3 * r  # three reservations at once, not four
    parent = await parent_key(node, http, wallet, mint_url, 100)
    status, made, _ = await call(http, node.v1 + "/balance/child-key", parent, {"balance_limit": limit})
    assert status == 200
    (child,) = made["api_keys"]

    statuses = await asyncio.gather(
        *(call(http, node.v1 + "/chat/completions", child, BODY) for _ in range(30))
    )
    codes = [s for s, _, _ in statuses]
    assert set(codes) <= {200, 402} and codes.count(200) >= 3, codes
    ok = codes.count(200)
    info = await child_info(node, child)
    assert info["reserved"] == 0 and info["balance_limit_spent"] == ok * c <= limit
    parent_id = await key_id(node, parent)
    row = await node.assert_books_balance(parent_id)
    assert row.reserved_msat == 0 and row.balance_msat == 100_000 - FEE - ok * c
    assert (await node.ledger_sums(parent_id))["charge"] == FEE + ok * c
    await assert_books(node)


async def test_two_processes_on_one_database_keep_a_childs_limit(
    tmp_path: Path, mint_url: str, fake_upstream: Upstream, wallet: TestWallet
):
    if "postgres" not in _backends():
        pytest.skip("set TEST_POSTGRES_URL to run the fleet test")
    pricing = tmp_path / "pricing.toml"
    pricing.write_text(PRICING)
    async with fresh_database("postgres", tmp_path) as db_url, aiohttp.ClientSession() as http:
        env = node_env(
            mint_url, fake_upstream.url, db_url, pricing, SECRET_KEY="fleet-child", DB_POOL_SIZE="4"
        )
        nodes = [NodeProcess(env, tmp_path / f"node{i}.log") for i in range(2)]
        try:
            await asyncio.gather(*(asyncio.to_thread(n.start) for n in nodes))
            await fleet_spends_one_child(nodes, http, wallet, mint_url, db_url)
        finally:
            for n in nodes:
                n.stop()


async def fleet_spends_one_child(
    nodes: list[NodeProcess], http: aiohttp.ClientSession, wallet: TestWallet, mint: str, db_url: str
) -> None:
    status, created, _ = await call(
        http, nodes[0].url + "/v1/balance/create", None, {"cashu_token": await wallet.asend(mint, 100)}
    )
    assert status == 201
    parent = created["api_key"]
    limit = 3 * (await advertised(http, nodes[0].url)).reservation()  # three at once, not four
    status, made, _ = await call(
        http, nodes[1].url + "/v1/wallet/child-key", parent, {"balance_limit": limit}
    )
    assert status == 200
    (child,) = made["api_keys"]
    statuses = await asyncio.gather(
        *(call(http, nodes[i % 2].url + "/v1/chat/completions", child, BODY) for i in range(40))
    )
    codes = [s for s, _, _ in statuses]
    assert set(codes) <= {200, 402} and 200 in codes and 402 in codes, codes
    charged = [int(h["X-Routstr-Cost-Msats"]) for s, _, h in statuses if s == 200]
    db = Database(db_url)
    try:
        async with db.read() as conn:
            rows = await conn.exec_driver_sql("SELECT payer_id, spent_msat, reserved_msat FROM key_limits")
            ((parent_id, spent, reserved),) = rows.all()
            row = await accounts.key_by_id(conn, parent_id)
            assert await child_store.counter_mismatches(conn) == []
    finally:
        await db.close()
    assert reserved == 0 and spent == sum(charged) <= limit
    assert row is not None and row.balance_msat == 100_000 - sum(charged) and row.reserved_msat == 0
    await assert_audit_passes(nodes[0])
