"""The node's mints as the operator sees them: health, exposure against its limit, books per unit."""

from __future__ import annotations

from typing import Any

from routstr.node import Node
from routstr.storage import admin_queries as queries
from routstr.storage.books import books


async def mints_view(node: Node) -> list[dict[str, Any]]:
    """Each configured mint: health, what the node holds there (its exposure, against the limit) and
    the books per unit."""
    async with node.db.read() as conn:
        all_books = await books(conn)
    out = []
    for url in node.mints.urls:
        h = node.mints.health[url]
        mine = [b for b in all_books if b.mint_url == url]
        out.append(
            {
                "url": url,
                "primary": url == node.mints.primary,
                "up": h.up,
                "checked_at": h.checked_at or None,
                "error": h.error or None,
                "exposure_msat": sum(b.wallet_msat for b in mine),
                "max_exposure_msat": node.mints.max_exposure_msat or None,
                "units": [queries.books_entry(b) for b in mine],
            }
        )
    return out
