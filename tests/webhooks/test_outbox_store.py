"""The outbox's rules in the database: one sender per attempt, and only finished deliveries are pruned."""

from __future__ import annotations

from pathlib import Path

import pytest

from routstr.storage import accounts
from routstr.storage import webhook_store as store
from routstr.storage.db import Database
from routstr.storage.migrate import upgrade
from tests.conftest import fresh_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
DAY_MS = 24 * 3600 * 1000


async def test_a_delivery_is_claimed_once_and_only_finished_ones_are_pruned(backend: str, tmp_path: Path):
    async with fresh_database(backend, tmp_path) as url:
        await upgrade(url)
        db = Database(url)
        try:
            now = accounts.now_ms()
            old = now - 8 * DAY_MS
            async with db.write() as conn:
                key_id = await accounts.create_key(conn, "h" * 64, "sk", None, "sat")
                await store.insert_webhook(
                    conn, "wh_1", key_id, "https://x.example/", ("balance.low",), "v1:sealed", 1000, old
                )
                for n in range(3):
                    await store.enqueue(conn, f"evt_{n}", "wh_1", "balance.low", "{}", old)
            async with db.read() as conn:
                due = await store.due(conn, now, 10)
            assert [d.event_id for d in due] == ["evt_0", "evt_1", "evt_2"]
            assert due[0].secret_sealed == "v1:sealed" and due[0].attempts == 0

            # two senders holding the same snapshot: only the first gets the attempt
            async with db.write() as conn:
                assert await store.claim(conn, due[0], now + 60_000)
                assert not await store.claim(conn, due[0], now + 60_000)
            async with db.read() as conn:
                assert [d.event_id for d in await store.due(conn, now, 10)] == ["evt_1", "evt_2"]

            async with db.write() as conn:
                await store.delivered(conn, due[0].id, now)
                await store.failed(conn, due[1].id, "HTTP 500", None, now)  # given up
                await store.failed(conn, due[2].id, "HTTP 500", now + 1000, now)  # still to retry
            async with db.read() as conn:
                assert not await store.any_to_prune(conn, old)  # created at the cutoff, not before it
                assert await store.any_to_prune(conn, now - 7 * DAY_MS)
            async with db.write() as conn:
                assert await store.prune(conn, now - 7 * DAY_MS) == 2
            async with db.read() as conn:
                [left] = await store.deliveries_of(conn, "wh_1")
                assert not await store.any_to_prune(conn, now - 7 * DAY_MS)
            assert (
                left.event_id == "evt_2"
                and left.last_error == "HTTP 500"
                and left.next_attempt_at == now + 1000
            )
        finally:
            await db.close()
