"""The dashboard password: its scrypt hash in the database, set once from ``ADMIN_PASSWORD`` and then
changed by the operator (dashboard, admin API); a change logs the other dashboard sessions out."""

from __future__ import annotations

import asyncio
import logging

from routstr.core.passwords import hash_password, verify_password
from routstr.node import Node
from routstr.storage import admin_sessions, admin_store
from routstr.storage.db import Database

log = logging.getLogger(__name__)


async def store_first_password(db: Database, configured: str) -> None:
    """At start-up: ``ADMIN_PASSWORD`` becomes the stored hash unless one is stored already."""
    if not configured:
        return
    async with db.read() as conn:
        if await admin_store.password_hash(conn) is not None:
            return
    hashed = await asyncio.to_thread(hash_password, configured)
    async with db.write() as conn:
        if await admin_store.set_password_hash(conn, hashed, only_if_unset=True):
            log.info("admin password stored (as a scrypt hash) from ADMIN_PASSWORD")


async def password_is_set(node: Node) -> bool:
    async with node.db.read() as conn:
        return await admin_store.password_hash(conn) is not None


async def check_password(node: Node, password: str) -> bool:
    async with node.db.read() as conn:
        stored = await admin_store.password_hash(conn)
    if stored is None:
        return False
    return await asyncio.to_thread(verify_password, password, stored)


async def change_password(node: Node, new_password: str, keep: str | None = None) -> int:
    """Store the new hash and log out every dashboard session but ``keep`` (the hash of the session
    that made the change; None: all of them); returns how many were ended."""
    hashed = await asyncio.to_thread(hash_password, new_password)
    async with node.db.write() as conn:
        await admin_store.set_password_hash(conn, hashed)
        return await admin_sessions.end_all_but(conn, keep)
