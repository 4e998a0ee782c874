"""The live BTC/USD rate: the median of several public price sources, refreshed in the background.

USD-priced models are charged in msat converted at this rate, so a wrong or old rate is a wrong price.
Hence: several sources (one bad exchange cannot move a median of three), absurd answers dropped, and a
staleness limit after which :meth:`BtcUsdFeed.rate` raises :class:`StaleRate` so the node answers 503
for USD-priced models rather than charge at a rate nobody has confirmed for a while. A pinned rate
(``BTC_USD_PRICE``) replaces all of it and never touches the network.

Logs and diagnostics name sources, never their URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp

from routstr.rates.sources import Source

__all__ = ["DEFAULT_SANE_RANGE", "BtcUsdFeed", "SourceStatus", "StaleRate"]

log = logging.getLogger("routstr.rates")

DEFAULT_SANE_RANGE = (Decimal(100), Decimal(10_000_000))
MAX_BODY_BYTES = 256 * 1024  # blockchain.info's all-currency ticker is a few kB
_HEADERS = {"Accept": "application/json", "User-Agent": "routstr-rates/1"}


class StaleRate(Exception):
    """No BTC/USD rate younger than ``max_age_s``: USD-priced models must not be sold (answer 503)."""

    def __init__(self, age_s: float | None, max_age_s: float) -> None:
        self.age_s = age_s
        self.max_age_s = max_age_s
        if age_s is None:
            msg = (
                "no BTC/USD rate yet: no price source has answered; "
                "USD-priced models are unavailable until one does"
            )
        else:
            msg = (
                f"the BTC/USD rate is {age_s:.0f}s old (limit {max_age_s:.0f}s): the price sources are not "
                "answering; USD-priced models are unavailable until they do"
            )
        super().__init__(msg)


@dataclass(slots=True)
class SourceStatus:
    """What one source said last time: for diagnostics and for logging only on changes."""

    last_value: Decimal | None = None
    last_ok_at: float | None = None
    last_error: str | None = None
    failures_in_a_row: int = 0


class BtcUsdFeed:
    """USD per BTC from the median of the sources that answered, or a pinned rate.

    ``refresh()`` asks every source at once (each within ``timeout_s``) and keeps the median of the good
    answers when at least ``min_sources`` gave one; otherwise the previous rate stays and keeps ageing.
    ``rate()`` is cheap and synchronous, meant to be called on every USD-priced request.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        session: aiohttp.ClientSession | None,
        *,
        refresh_s: float,
        max_age_s: float,
        timeout_s: float = 5.0,
        pinned: Decimal | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_sources: int = 1,
        retry_s: float | None = None,
        sane_range: tuple[Decimal, Decimal] = DEFAULT_SANE_RANGE,
    ) -> None:
        if pinned is not None and (not pinned.is_finite() or pinned <= 0):
            raise ValueError(f"a pinned BTC/USD rate must be a positive number, got {pinned}")
        if pinned is None:
            if session is None:
                raise ValueError("a live BTC/USD feed needs an aiohttp session (or a pinned rate)")
            if not sources:
                raise ValueError("a live BTC/USD feed needs at least one price source (or a pinned rate)")
            if not 1 <= min_sources <= len(sources):
                raise ValueError(
                    f"min_sources={min_sources} must be between 1 and the {len(sources)} sources"
                )
            names = [s.name for s in sources]
            if len(set(names)) != len(names):
                raise ValueError(f"price source names must be unique, got {names}")
        if min(refresh_s, max_age_s, timeout_s) <= 0:
            raise ValueError("refresh_s, max_age_s and timeout_s must be positive")
        if max_age_s <= refresh_s:
            raise ValueError(
                f"max_age_s={max_age_s} must exceed refresh_s={refresh_s}, or the rate goes stale between "
                "two refreshes"
            )
        if not 0 < sane_range[0] < sane_range[1]:
            raise ValueError(f"sane_range={sane_range} must be (low, high) with 0 < low < high")
        self._sources = tuple(sources)
        self._session = session
        self._refresh_s = refresh_s
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._retry_s = min(refresh_s, 10.0) if retry_s is None else retry_s
        self._pinned = pinned
        self._clock = clock
        self._min_sources = min_sources
        self._low, self._high = sane_range
        self._rate: Decimal | None = None
        self._rate_at: float | None = None
        self._status = {s.name: SourceStatus() for s in self._sources}
        self._lock = asyncio.Lock()

    @property
    def pinned(self) -> Decimal | None:
        return self._pinned

    def age_s(self) -> float | None:
        """Seconds since the current rate was fetched; None if pinned or never fetched."""
        if self._pinned is not None or self._rate_at is None:
            return None
        return self._clock() - self._rate_at

    def rate(self) -> Decimal:
        """The rate to charge at now; raises :class:`StaleRate` when there is none young enough."""
        if self._pinned is not None:
            return self._pinned
        age = self.age_s()
        if self._rate is None or age is None:
            raise StaleRate(None, self._max_age_s)
        if age > self._max_age_s:
            raise StaleRate(age, self._max_age_s)
        return self._rate

    async def refresh(self) -> Decimal | None:
        """Ask every source once; the new rate, or None when too few answered (the old one is kept).

        Never raises for a source's failure. Concurrent calls run one after the other.
        """
        if self._pinned is not None:
            return self._pinned
        async with self._lock:
            started = self._clock()
            answers = await asyncio.gather(*(self._ask(s) for s in self._sources))
            good: list[Decimal] = []
            for source, answer in zip(self._sources, answers, strict=True):
                self._record(source.name, answer)
                if isinstance(answer, Decimal):
                    good.append(answer)
            if len(good) < self._min_sources:
                age = self.age_s()
                kept = "no rate yet" if age is None else f"keeping the rate from {age:.0f}s ago"
                log.warning(
                    "BTC/USD: %d of %d price sources answered (need %d); %s: %s",
                    len(good),
                    len(self._sources),
                    self._min_sources,
                    kept,
                    self._errors_line(),
                )
                return None
            first = self._rate is None
            # fetched no earlier than `started`: dating it from there errs towards stale, never fresh
            self._rate, self._rate_at = statistics.median(good), started
            (log.info if first else log.debug)(
                "BTC/USD rate %s from %d of %d sources", self._rate, len(good), len(self._sources)
            )
            return self._rate

    async def run_forever(self) -> None:
        """Refresh every ``refresh_s`` (every ``retry_s`` after a failed round) until cancelled.

        Returns at once when the rate is pinned. An unexpected error is logged and the loop goes on.
        """
        if self._pinned is not None:
            return
        while True:
            ok = False
            try:
                ok = await self.refresh() is not None
            except Exception as e:
                log.error("BTC/USD refresh failed unexpectedly (%s); retrying", type(e).__name__)
                log.debug("BTC/USD refresh failure", exc_info=True)
            await asyncio.sleep(self._refresh_s if ok else self._retry_s)

    @contextlib.asynccontextmanager
    async def running(self, *, first_refresh: bool = True) -> AsyncIterator[BtcUsdFeed]:
        """Run :meth:`run_forever` in a task for the duration of the block (e.g. an aiohttp cleanup_ctx).

        With ``first_refresh`` the block starts once the first round is done (at most ``timeout_s``), so
        the first USD-priced requests find a rate when a source answers.
        """
        if first_refresh and self._pinned is None:
            await self.refresh()
            task = asyncio.create_task(self._run_after(self._refresh_s), name="btc-usd-feed")
        else:
            task = asyncio.create_task(self.run_forever(), name="btc-usd-feed")
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s if self._rate is not None else self._retry_s)
        await self.run_forever()

    def snapshot(self) -> dict[str, Any]:
        """The state for diagnostics (JSON-ready: Decimals as strings): rate, age, each source's last word."""
        if self._pinned is not None:
            return {"pinned": True, "rate": str(self._pinned), "age_s": None, "stale": False, "sources": {}}
        now = self._clock()
        age = self.age_s()
        stale = self._rate is None or age is None or age > self._max_age_s
        return {
            "pinned": False,
            "rate": None if self._rate is None else str(self._rate),
            "age_s": None if age is None else round(age, 1),
            "stale": stale,
            "max_age_s": self._max_age_s,
            "refresh_s": self._refresh_s,
            "min_sources": self._min_sources,
            "sources": {
                name: {
                    "value": None if st.last_value is None else str(st.last_value),
                    "age_s": None if st.last_ok_at is None else round(now - st.last_ok_at, 1),
                    "error": st.last_error,
                }
                for name, st in self._status.items()
            },
        }

    async def _ask(self, source: Source) -> Decimal | str:
        """One source's price, or why it has none (a short text naming no URL)."""
        assert self._session is not None
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._session.get(source.url, headers=_HEADERS) as r:
                    if r.status != 200:
                        return f"HTTP {r.status}"
                    raw = bytearray()
                    async for chunk in r.content.iter_chunked(16384):
                        raw += chunk
                        if len(raw) > MAX_BODY_BYTES:
                            return f"answer larger than {MAX_BODY_BYTES} bytes"
        except TimeoutError:
            return f"no answer within {self._timeout_s:g}s"
        except aiohttp.ClientError as e:
            return f"connection failed ({type(e).__name__})"
        except Exception as e:  # one source's odd failure must not end the round for the others
            log.debug("BTC/USD source %s: unexpected error", source.name, exc_info=True)
            return f"failed ({type(e).__name__})"
        try:
            body = json.loads(raw, parse_float=Decimal)
        except ValueError:
            return "answer is not JSON"
        try:
            value = source.parse(body)
        except ValueError as e:
            return f"unexpected answer: {e}"[:200]
        if not self._low <= value <= self._high:
            return f"absurd price {value} (outside {self._low}..{self._high})"
        return value

    def _record(self, name: str, answer: Decimal | str) -> None:
        st = self._status[name]
        if isinstance(answer, Decimal):
            if st.last_error is not None:
                log.info("BTC/USD source %s answers again", name)
            st.last_value, st.last_ok_at, st.last_error, st.failures_in_a_row = answer, self._clock(), None, 0
            return
        if answer != st.last_error:  # log changes, not every round of a source that stays down
            log.warning("BTC/USD source %s failed: %s", name, answer)
        st.last_error = answer
        st.failures_in_a_row += 1

    def _errors_line(self) -> str:
        return "; ".join(f"{n}: {st.last_error}" for n, st in self._status.items() if st.last_error) or "-"
