"""Leases: one process of a fleet runs each background job (see ``schema.leases``)."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from routstr.core.ids import process_is_dead
from routstr.storage.accounts import now_ms
from routstr.storage.db import Database
from routstr.storage.schema import leases


async def hold(db: Database, name: str, holder: str, ttl_s: float) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False if another holder's lease is current.

    A holder known to be dead (a killed process on this host) loses its lease at once, so a node
    restarted after a crash does not wait for the lease to expire.
    """
    now = now_ms()
    until = now + int(ttl_s * 1000)
    async with db.read() as conn:
        row = (await conn.execute(select(leases.c.holder).where(leases.c.name == name))).first()
    if row is not None and row[0] != holder and process_is_dead(row[0]):
        async with db.write() as conn:
            await conn.execute(
                update(leases).where(leases.c.name == name, leases.c.holder == row[0]).values(expires_at=0)
            )
    async with db.write() as conn:
        res = await conn.execute(
            update(leases)
            .where(leases.c.name == name, (leases.c.holder == holder) | (leases.c.expires_at < now))
            .values(holder=holder, expires_at=until)
        )
        if res.rowcount == 1:
            return True
    try:
        async with db.write() as conn:
            await conn.execute(insert(leases).values(name=name, holder=holder, expires_at=until))
        return True
    except IntegrityError:  # it exists and someone else holds it
        return False
