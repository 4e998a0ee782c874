"""Webhooks end to end: a real node, keys funded at the real test mint, spending through the fake
upstream, and a local receiver on 127.0.0.1 that records what it gets and fails on demand."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import select

from routstr.core.sealed import unseal
from routstr.devtools.test_wallet import TestWallet
from routstr.node import NODE
from routstr.storage import webhook_store
from routstr.storage.schema import webhooks as webhooks_table
from routstr.wallet.expiry import pay_out_expired
from routstr.webhooks.delivery import SECRET_PURPOSE, DeliveryPolicy, deliver_due
from tests.conftest import NodeHandle, Upstream, running_node

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "whsec_receiver_knows_this"
FAST = {  # the receiver is on loopback over http; rounds and retries in fractions of a second
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_ALLOW_HTTP": "true",
    "WEBHOOK_CHECK_SECONDS": "0.2",
    "WEBHOOK_DELIVER_SECONDS": "0.2",
    "WEBHOOK_RETRY_BASE_SECONDS": "0.3",
    "WEBHOOK_RETRY_MAX_SECONDS": "1",
    "WEBHOOK_TIMEOUT_SECONDS": "3",
}
SPEND = {"model": "gpt-4o-mini", "max_tokens": 20, "messages": [{"role": "user", "content": "y " * 1500}]}


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        out: dict[str, Any] = orjson.loads(self.body)
        return out


@dataclass
class Receiver:
    base: str = ""
    calls: list[Call] = field(default_factory=list)
    fail_next: int = 0  # answer 500 to this many deliveries first

    @property
    def url(self) -> str:
        return self.base + "/hook?from=routstr"

    def delivered(self, event: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.status == 200 and c.path.startswith("/hook") and (event is None or c.event["type"] == event)
        ]


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def hook(request: web.Request) -> web.Response:
        status = 200
        if rec.fail_next > 0:
            rec.fail_next -= 1
            status = 500
        rec.calls.append(Call(request.path_qs, dict(request.headers), await request.read(), status))
        return web.Response(status=status)

    async def moved(request: web.Request) -> web.Response:
        rec.calls.append(Call(request.path_qs, dict(request.headers), await request.read(), 307))
        return web.Response(status=307, headers={"Location": "/hook"})

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/moved", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield rec
    await runner.cleanup()


async def eventually(check: Callable[[], Awaitable[bool] | bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def funded_key(
    node: NodeHandle, wallet: TestWallet, mint_url: str, http: aiohttp.ClientSession, sats: int
) -> dict[str, str]:
    token = await wallet.asend(mint_url, sats)
    async with http.post(node.v1 + "/balance/create", json={"cashu_token": token}) as r:
        assert r.status == 201, await r.text()
        return {"Authorization": f"Bearer {(await r.json())['api_key']}"}


async def register(
    node: NodeHandle, http: aiohttp.ClientSession, key: dict[str, str], **body: Any
) -> dict[str, Any]:
    async with http.post(node.v1 + "/webhooks", json={"secret": SECRET, **body}, headers=key) as r:
        assert r.status == 201, await r.text()
        out: dict[str, Any] = await r.json()
    return out


async def balance(node: NodeHandle, http: aiohttp.ClientSession, key: dict[str, str]) -> int:
    async with http.get(node.v1 + "/balance/info", headers=key) as r:
        return int((await r.json())["balance"])


async def spend_below(node: NodeHandle, http: aiohttp.ClientSession, key: dict[str, str], msat: int) -> int:
    """Chat completions until the key's balance is below ``msat``; the balance then."""
    for _ in range(50):
        async with http.post(node.v1 + "/chat/completions", json=SPEND, headers=key) as r:
            assert r.status == 200, await r.text()
        left = await balance(node, http, key)
        if left < msat:
            return left
    raise AssertionError("the balance never went below the threshold")


def signed_by(call: Call, secret: str) -> bool:
    """What a receiver does: HMAC-SHA256 over the raw body, compared in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), call.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, call.headers["X-Webhook-Signature"])


async def test_balance_low_fires_once_per_crossing_signed_and_retried(
    backend: str,
    wallet: TestWallet,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path: Path,
    receiver: Receiver,
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, **FAST) as node,
        aiohttp.ClientSession() as http,
    ):
        key = await funded_key(node, wallet, mint_url, http, 30)
        hook = await register(node, http, key, url=receiver.url, events=["balance.low"], low_balance_sats=20)
        assert hook["low_balance_msat"] == 20_000 and "secret" not in hook and SECRET not in str(hook)
        await asyncio.sleep(0.6)  # three check rounds above the threshold: nothing
        assert receiver.calls == []

        receiver.fail_next = 2
        await spend_below(node, http, key, 20_000)
        for _ in range(2):  # spending on below the threshold is the same crossing
            async with http.post(node.v1 + "/chat/completions", json=SPEND, headers=key) as r:
                assert r.status == 200
        final = await balance(node, http, key)
        await eventually(lambda: len(receiver.delivered()) == 1)

        # two failures, then the same event again: same id, same body, signed with the secret
        assert [c.status for c in receiver.calls] == [500, 500, 200]
        ids = {c.headers["X-Webhook-Id"] for c in receiver.calls}
        assert len(ids) == 1 and len({c.body for c in receiver.calls}) == 1
        call = receiver.calls[-1]
        assert all(signed_by(c, SECRET) for c in receiver.calls) and not signed_by(call, SECRET + "x")
        assert (
            call.headers["Content-Type"] == "application/json"
            and call.headers["X-Webhook-Event"] == "balance.low"
        )
        assert abs(int(call.headers["X-Webhook-Timestamp"]) - time.time()) < 60
        assert call.path == "/hook?from=routstr"
        event = call.event
        assert event["id"] == call.headers["X-Webhook-Id"] and event["id"].startswith("evt_")
        assert event["type"] == "balance.low" and abs(event["created_at"] - time.time()) < 60
        data = event["data"]
        assert data["webhook_id"] == hook["id"] and data["threshold"] == 20_000 and data["unit"] == "msat"
        assert final <= data["balance"] + data["reserved"] < 20_000

        async def recorded() -> bool:  # the node writes it down after the receiver's answer arrived
            async with node.db.read() as conn:
                [row] = await webhook_store.deliveries_of(conn, hook["id"])
            return row.delivered_at is not None

        await eventually(recorded)
        async with node.db.read() as conn:
            [row] = await webhook_store.deliveries_of(conn, hook["id"])
        assert row.attempts == 3 and row.next_attempt_at is None and row.last_error is None

        await asyncio.sleep(1.0)  # five more rounds, still below: no second event
        assert len(receiver.calls) == 3

        # a top-up above the threshold re-arms it; the next crossing is a new event
        token = await wallet.asend(mint_url, 15)
        async with http.post(node.v1 + "/balance/topup", json={"cashu_token": token}, headers=key) as r:
            assert r.status == 200 and (await r.json())["balance"] >= 20_000

        async def rearmed() -> bool:
            async with node.db.read() as conn:
                flag = (await conn.execute(select(webhooks_table.c.low_fired))).scalar_one()
            return flag is False or flag == 0

        await eventually(rearmed)
        await spend_below(node, http, key, 20_000)
        await eventually(lambda: len(receiver.delivered()) == 2)
        second = receiver.delivered()[1]
        assert (
            second.event["id"] != event["id"]
            and second.event["type"] == "balance.low"
            and signed_by(second, SECRET)
        )
        await asyncio.sleep(0.6)
        assert len(receiver.delivered()) == 2


async def test_key_expired_is_sent_when_a_key_expires(
    backend: str,
    wallet: TestWallet,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path: Path,
    receiver: Receiver,
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, **FAST) as node,
        aiohttp.ClientSession() as http,
    ):
        holding = await funded_key(node, wallet, mint_url, http, 10)  # no Refund-LNURL: the balance stays
        emptied = await funded_key(node, wallet, mint_url, http, 5)
        hook_holding = await register(node, http, holding, url=receiver.url, events=["key.expired"])
        hook_emptied = await register(
            node, http, emptied, url=receiver.url, events=["key.expired", "balance.low"], low_balance_sats=1
        )
        async with http.post(node.v1 + "/balance/refund", headers=emptied) as r:
            assert r.status == 200 and (await r.json())["balance"] == 0
        expiry = int(time.time()) + 2  # at least a second away
        for key in (holding, emptied):
            async with http.get(
                node.v1 + "/balance/info", headers={**key, "Key-Expiry-Time": str(expiry)}
            ) as r:
                assert r.status == 200
        await asyncio.sleep(0.6)
        assert receiver.delivered("key.expired") == []  # not yet expired
        await asyncio.sleep(max(0.0, expiry + 0.1 - time.time()))

        # the expiry job (called here rather than waiting its 30 s round) ends the holding key's expiry,
        # and the webhook's event is written in that same transaction
        assert await pay_out_expired(node.db, node.app[NODE].payouts) == {"kept": 1}
        await eventually(lambda: len(receiver.delivered("key.expired")) == 2)
        by_hook = {c.event["data"]["webhook_id"]: c for c in receiver.delivered("key.expired")}
        held = by_hook[hook_holding["id"]]
        assert held.event["data"] == {
            "webhook_id": hook_holding["id"],
            "expired_at": expiry,
            "balance": 10_000,
            "unit": "msat",
            "payout": "kept",
        }
        # the emptied key has nothing for the expiry job to pay out: the webhook check tells it
        assert by_hook[hook_emptied["id"]].event["data"]["payout"] == "none"
        assert by_hook[hook_emptied["id"]].event["data"]["expired_at"] == expiry
        assert all(signed_by(c, SECRET) for c in by_hook.values())
        # the emptied key's balance.low fired too (it is at 0, below 1 sat): one of each
        assert len(receiver.delivered("balance.low")) == 1

        assert await pay_out_expired(node.db, node.app[NODE].payouts) == {}  # each expiry acts once
        await asyncio.sleep(0.6)
        assert len(receiver.delivered("key.expired")) == 2


async def test_list_delete_and_what_a_registration_must_be(
    backend: str,
    wallet: TestWallet,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path: Path,
    receiver: Receiver,
):
    env = {**FAST, "WEBHOOK_MAX_PER_KEY": "2"}
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, **env) as node,
        aiohttp.ClientSession() as http,
    ):
        alice = await funded_key(node, wallet, mint_url, http, 5)
        bob = await funded_key(node, wallet, mint_url, http, 5)
        body = {"url": receiver.url, "events": ["key.expired"], "secret": SECRET}
        async with http.post(node.v1 + "/webhooks", json=body) as r:
            assert r.status == 401
        async with http.post(
            node.v1 + "/webhooks", json={**body, "events": ["balance.high"]}, headers=alice
        ) as r:
            assert r.status == 400
            err = (await r.json())["error"]
            assert err["type"] == "invalid_request" and err["details"]["unknown"] == ["balance.high"]
        async with http.post(node.v1 + "/webhooks", json={**body, "secret": "short"}, headers=alice) as r:
            assert r.status == 400 and (await r.json())["error"]["details"]["param"] == "secret"

        first = await register(node, http, alice, url=receiver.url, events=["balance.low", "key.expired"])
        assert first["events"] == ["balance.low", "key.expired"] and first["low_balance_msat"] == 1_000_000
        second = await register(node, http, alice, url=receiver.url + "&n=2", events=["key.expired"])
        assert second["low_balance_msat"] is None
        async with http.post(node.v1 + "/webhooks", json=body, headers=alice) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == "too_many_webhooks"

        async with http.get(node.v1 + "/webhooks", headers=alice) as r:
            listed = (await r.json())["data"]
        assert {w["id"] for w in listed} == {first["id"], second["id"]}
        assert SECRET not in orjson.dumps(listed).decode() and all("secret" not in w for w in listed)
        async with http.get(node.v1 + "/webhooks", headers=bob) as r:
            assert (await r.json())["data"] == []

        # at rest the secret is sealed with the node's secret, not stored as given
        async with node.db.read() as conn:
            stored = (await conn.execute(select(webhooks_table.c.secret_sealed))).scalars().all()
        assert len(stored) == 2 and all(SECRET not in s and s.startswith("v1:") for s in stored)
        assert {unseal(node.app[NODE].auth.secret, SECRET_PURPOSE, s) for s in stored} == {SECRET}

        # alice holds less than the default 1,000 sats: the first webhook fired and was delivered
        await eventually(
            lambda: [c.event["data"]["webhook_id"] for c in receiver.delivered()] == [first["id"]]
        )
        async with node.db.read() as conn:
            assert len(await webhook_store.deliveries_of(conn, first["id"])) == 1
        async with http.delete(node.v1 + f"/webhooks/{first['id']}", headers=bob) as r:
            assert r.status == 404  # only its owner may, and others do not learn it exists
        async with http.delete(node.v1 + f"/webhooks/{first['id']}", headers=alice) as r:
            assert r.status == 204
        async with http.delete(node.v1 + f"/webhooks/{first['id']}", headers=alice) as r:
            assert r.status == 404 and (await r.json())["error"]["type"] == "not_found"
        async with http.get(node.v1 + "/webhooks", headers=alice) as r:
            assert [w["id"] for w in (await r.json())["data"]] == [second["id"]]
        async with node.db.read() as conn:  # its outbox went with it
            assert await webhook_store.deliveries_of(conn, first["id"]) == []
        async with http.get(node.url + "/openapi.json") as r:
            paths = (await r.json())["paths"]
        assert (
            set(paths["/v1/webhooks"]) == {"get", "post"} and "delete" in paths["/v1/webhooks/{webhook_id}"]
        )


async def test_private_destinations_are_refused_without_the_setting(
    backend: str,
    wallet: TestWallet,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path: Path,
    receiver: Receiver,
):
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, WEBHOOK_ALLOW_HTTP="true") as node,
        aiohttp.ClientSession() as http,
    ):
        key = await funded_key(node, wallet, mint_url, http, 5)
        port = receiver.base.rsplit(":", 1)[1]
        for url in (
            receiver.url,
            f"http://localhost:{port}/hook",
            f"http://[::1]:{port}/hook",
            f"http://[::ffff:127.0.0.1]:{port}/hook",
            "http://10.0.0.7/hook",
            "http://169.254.169.254/latest/meta-data/",
        ):
            async with http.post(
                node.v1 + "/webhooks",
                json={"url": url, "events": ["balance.low"], "secret": SECRET},
                headers=key,
            ) as r:
                assert r.status == 400, url
                err = (await r.json())["error"]
                assert err["code"] == "destination_not_allowed" and err["details"]["param"] == "url", url
        async with http.get(node.v1 + "/webhooks", headers=key) as r:
            assert (await r.json())["data"] == []
    assert receiver.calls == []


async def test_the_destination_is_checked_again_at_delivery_and_redirects_are_not_followed(
    backend: str,
    wallet: TestWallet,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path: Path,
    receiver: Receiver,
):
    env = {**FAST, "WEBHOOK_DELIVER_SECONDS": "3600", "WEBHOOK_MAX_ATTEMPTS": "2"}  # delivered by hand here
    async with (
        running_node(backend, mint_url, fake_upstream, tmp_path, **env) as node,
        aiohttp.ClientSession() as http,
    ):
        key = await funded_key(node, wallet, mint_url, http, 5)
        # registered below its threshold already: it fires at the next check
        direct = await register(
            node, http, key, url=receiver.url, events=["balance.low"], low_balance_sats=10
        )
        moved = await register(
            node, http, key, url=receiver.base + "/moved", events=["balance.low"], low_balance_sats=10
        )

        async def outbox(hook_id: str) -> list[webhook_store.DeliveryRow]:
            async with node.db.read() as conn:
                return await webhook_store.deliveries_of(conn, hook_id)

        async def both_queued() -> bool:
            return len(await outbox(direct["id"])) == 1 and len(await outbox(moved["id"])) == 1

        await eventually(both_queued)
        n = node.app[NODE]
        strict = DeliveryPolicy(
            allow_private=False, allow_http=True, timeout_s=3, retry_base_s=0.2, max_attempts=2
        )
        # the operator no longer allows private destinations: nothing is sent, the attempt is recorded
        assert await deliver_due(node.db, n.payouts.session, n.auth.secret, strict) == {"retry": 2}
        assert receiver.calls == []
        [row] = await outbox(direct["id"])
        assert row.attempts == 1 and row.delivered_at is None and row.last_error
        assert "loopback" in row.last_error and "/hook" not in row.last_error
        await asyncio.sleep(0.25)

        lenient = DeliveryPolicy(
            allow_private=True, allow_http=True, timeout_s=3, retry_base_s=0.2, max_attempts=2
        )
        assert await deliver_due(node.db, n.payouts.session, n.auth.secret, lenient) == {
            "delivered": 1,
            "gave_up": 1,
        }
        # the 307 was an answer, not a delivery, and was not followed to /hook
        assert [c.path for c in receiver.calls if c.status == 307] == ["/moved"]
        assert [c.event["data"]["webhook_id"] for c in receiver.delivered()] == [direct["id"]]
        [gave_up] = await outbox(moved["id"])
        assert gave_up.gave_up_at and gave_up.delivered_at is None and gave_up.next_attempt_at is None
        assert gave_up.attempts == 2 and gave_up.last_error == "HTTP 307"
        assert await deliver_due(node.db, n.payouts.session, n.auth.secret, lenient) == {}
