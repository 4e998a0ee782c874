"""The books for scrapes, read from the database at most every few seconds.

Adding up the books reads every proof and key row; a scrape every few seconds from several
Prometheus servers must not turn into that many full reads.
"""

from __future__ import annotations

import asyncio
import logging
import time

from routstr.core.books import MintBooks
from routstr.storage.books import books
from routstr.storage.db import Database

log = logging.getLogger(__name__)

BOOKS_TTL_S = 5.0


class BooksCache:
    def __init__(self, ttl_s: float = BOOKS_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._books: list[MintBooks] = []
        self._at = float("-inf")  # time.monotonic() of the last read
        self._lock = asyncio.Lock()  # concurrent scrapes wait for one read

    async def get(self, db: Database) -> tuple[list[MintBooks], float]:
        """The books and their age in seconds. If the database fails, the last figures (their age
        shows it) rather than no answer: a scrape is how an operator notices the failure."""
        async with self._lock:
            if time.monotonic() - self._at >= self.ttl_s:
                try:
                    async with db.read() as conn:
                        self._books = await books(conn)
                    self._at = time.monotonic()
                except Exception as e:
                    log.warning("metrics: could not read the books: %s", type(e).__name__)
        age = time.monotonic() - self._at
        return self._books, age if age != float("inf") else -1.0
