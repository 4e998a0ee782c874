"""Providers and model settings from the database, applied over those of the environment and files.

The admin API and ``routstr providers`` write to the database (``storage/provider_store.py``); each
process applies what is there: at once in the process that made the change, and in every other
process of a fleet within CATALOGUE_SYNC_SECONDS (a job reads one version number and reloads only
when it moved). Applying builds a new runtime snapshot (``runtime.py``: the providers, the price book,
the aliases, the switched-off models) and replaces the current one whole, so a request keeps the
version it started with and ``Runtime.resolve`` and ``route`` stay dict lookups. A replaced provider's
pooled client is closed only once no request uses it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from routstr.core.pricing import PriceBook, parse_spec
from routstr.core.sealed import SealError, unseal
from routstr.rates.feed import BtcUsdFeed
from routstr.storage import provider_store
from routstr.storage.db import Database
from routstr.storage.provider_store import ModelSettingRow, ProviderRow
from routstr.upstream.aliases import split
from routstr.upstream.catalogue import Catalogue
from routstr.upstream.client import Upstream
from routstr.upstream.providers import Provider
from routstr.upstream.runtime import Effective
from routstr.upstream.spec import ProviderSpec

__all__ = ["Effective", "ManagedCatalogue", "db_spec", "effective"]

log = logging.getLogger(__name__)

LISTING_TIMEOUT_S = 10.0  # how long applying a change waits for a provider's model list
RETIRE_GRACE_S = 30.0  # a replaced client stays open at least this long (a request may have just picked it)
REAP_EVERY_S = 5.0


def effective(
    file_specs: Sequence[ProviderSpec],
    file_aliases: Mapping[str, tuple[str, ...]],
    file_prices: PriceBook,
    db_specs: Sequence[ProviderSpec],
    settings: Sequence[ModelSettingRow],
) -> Effective:
    """Pure: a model's stored price replaces its pricing-file entry as a whole; a stored alias list
    replaces the file's (an empty one removes it); a switched-off model is not sold under its own id
    nor through an alias, and an alias left with no target is switched off too (a wildcard alias
    whose one target is switched off, or that is switched off itself, matches nothing)."""
    models = dict(file_prices.models)
    overridden = set()
    for s in settings:
        if s.price is None:
            continue
        try:
            models[s.model] = parse_spec(s.price, f"models.{s.model}")
            overridden.add(s.model)
        except (ValueError, ArithmeticError) as e:  # stored by an older version with other rules
            log.error("ignoring the stored price of %s: %s", s.model, e)
    disabled = {s.model for s in settings if not s.enabled}
    aliases = dict(file_aliases)
    for s in settings:
        if s.aliases:
            aliases[s.model] = s.aliases
        elif s.aliases is not None:
            aliases.pop(s.model, None)
    exact, wildcards = split(aliases)
    live: dict[str, tuple[str, ...]] = {}
    for public, targets in exact.items():
        kept = tuple(t for t in targets if t not in disabled)
        if kept:
            live[public] = kept
        else:
            disabled.add(public)
    patterns: dict[str, str] = {}
    for pattern, target in wildcards.items():
        if target in disabled:
            disabled.add(pattern)
        elif pattern not in disabled:
            patterns[pattern] = target
    return Effective(
        specs=(*file_specs, *db_specs),
        prices=PriceBook(default=file_prices.default, models=models),
        aliases=live,
        disabled=frozenset(disabled),
        overridden=frozenset(overridden),
        patterns=patterns,
    )


def db_spec(row: ProviderRow, secret: bytes) -> ProviderSpec:
    """The provider a stored row describes (raises ``SealError`` if its key does not open)."""
    key = unseal(secret, provider_store.KEY_PURPOSE, row.api_key_sealed) if row.api_key_sealed else ""
    models = frozenset(row.models) if row.models is not None else None
    return ProviderSpec(row.name, row.base_url, key, row.fee, models, row.kind)


def _same_connection(a: ProviderSpec, b: ProviderSpec) -> bool:
    return (a.base_url, a.api_key, a.kind) == (b.base_url, b.api_key, b.kind)


class ManagedCatalogue:
    """Loads the database's providers and model settings and applies them to the running node."""

    def __init__(
        self,
        db: Database,
        secret: bytes,
        catalogue: Catalogue,
        build: Callable[[ProviderSpec], Provider],
        file_specs: Sequence[ProviderSpec],
        file_aliases: Mapping[str, tuple[str, ...]],
        file_prices: PriceBook,
        rates: BtcUsdFeed | None = None,
    ) -> None:
        """Applies to the catalogue's runtime snapshot (``catalogue.runtime``, the node's); ``build``
        makes a provider with its own pooled client."""
        self.db, self.secret, self.catalogue = db, secret, catalogue
        self.runtime, self.build = catalogue.runtime, build
        self.file_specs, self.file_aliases, self.file_prices = tuple(file_specs), file_aliases, file_prices
        self.file_names = frozenset(s.name for s in self.file_specs)  # read-only here: not stored
        self.rates = rates
        # the app factory runs the BTC/USD feed if prices need it at start, and says so here; if not,
        # a USD price set later starts it (until the factory has looked: assume it runs)
        self.rates_running = True
        self.version: str | None = None
        self.rows: list[ProviderRow] = []
        self.settings: dict[str, ModelSettingRow] = {}
        self.unreadable: frozenset[str] = frozenset()  # stored providers whose key did not open
        self.retire_grace_s, self.reap_every_s = RETIRE_GRACE_S, REAP_EVERY_S
        self._retired: list[tuple[float, Upstream]] = []
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None

    @property
    def state(self) -> Effective:
        """What the node sells now (the current snapshot's offer: for the operator's views)."""
        return self.runtime.current.offer

    async def sync(self) -> bool:
        """Reload if the stored version moved (the fleet job: one small read when nothing changed)."""
        async with self.db.read() as conn:
            current = await provider_store.version(conn)
        if current == self.version:
            return False
        await self.reload()
        return True

    async def reload(self) -> None:
        """Read everything and apply it (after a change here, or one another process made)."""
        async with self._lock:
            async with self.db.read() as conn:
                version = await provider_store.version(conn)  # first: rows are never older than it
                rows = await provider_store.list_providers(conn)
                settings = await provider_store.list_model_settings(conn)
            await self._apply(rows, settings)
            self.version = version

    async def _apply(self, rows: list[ProviderRow], settings: list[ModelSettingRow]) -> None:
        specs, unreadable = [], set()
        for row in rows:
            if not row.enabled:
                continue
            if row.name in self.file_names:  # the API refuses this; a providers file changed since
                log.error("provider %s is both in the files and the database: the file's is used", row.name)
                continue
            try:
                specs.append(db_spec(row, self.secret))
            except SealError:
                log.error("provider %s: its stored key does not open with this node's secret", row.name)
                unreadable.add(row.name)
        state = effective(self.file_specs, self.file_aliases, self.file_prices, specs, settings)
        current = self.runtime.current.providers
        if [p.spec for p in current] != list(state.specs):
            fresh, retired = self._rebuild(current, state.specs)
            # their model lists before requests reach them, in the same snapshot
            merged, open_list = await self.catalogue.listing(fresh, timeout_s=LISTING_TIMEOUT_S)
            models = merged or self.runtime.current.models  # nobody listed anything: keep what was known
            self.runtime.replace(providers=tuple(fresh), offer=state, models=models, open_list=open_list)
            self._retire(retired)
        else:
            self.runtime.replace(offer=state)
        self.rows, self.settings = rows, {s.model: s for s in settings}
        self.unreadable = frozenset(unreadable)
        self._start_rates_if_needed()

    def _rebuild(
        self, current: Sequence[Provider], specs: Sequence[ProviderSpec]
    ) -> tuple[list[Provider], list[Upstream]]:
        """New provider objects; one whose address, key and kind are unchanged keeps its client,
        breaker and model list. Returns them and the clients no longer used."""
        by_name = {p.spec.name: p for p in current}
        fresh: list[Provider] = []
        kept: set[int] = set()
        for spec in specs:
            old = by_name.get(spec.name)
            if old is not None and _same_connection(old.spec, spec):
                fresh.append(Provider(spec, old.client, old.breaker, old.listed, old.answered))
                kept.add(id(old.client))
            else:
                fresh.append(self.build(spec))
        return fresh, [p.client for p in current if id(p.client) not in kept]

    def _retire(self, clients: list[Upstream]) -> None:
        now = time.monotonic()
        self._retired.extend((now, c) for c in clients)
        if self._retired and (self._reaper is None or self._reaper.done()):
            self._reaper = asyncio.create_task(self._reap())

    async def _reap(self) -> None:
        """Close replaced clients once no request holds one of their connections (``Upstream.in_flight``;
        not before the grace period: a request may have chosen the provider a moment before it was
        replaced)."""
        while self._retired:
            await asyncio.sleep(self.reap_every_s)
            now = time.monotonic()
            done = [(t, c) for t, c in self._retired if now - t >= self.retire_grace_s and not c.in_flight]
            for item in done:
                self._retired.remove(item)
                await item[1].session.close()

    def _start_rates_if_needed(self) -> None:
        """A price set in USD at run time on a node whose files priced only in sats needs the rate."""
        if self.rates is not None and not self.rates_running and self.needs_live_rate():
            self.rates_running = True
            self._tasks.add(asyncio.create_task(self.rates.run_forever(), name="btc-usd-feed"))

    def needs_live_rate(self) -> bool:
        """Does some price in force need the live BTC/USD rate (none pinned)?"""
        if self.rates is None or self.rates.pinned is not None:
            return False
        specs = [self.state.prices.default, *self.state.prices.models.values()]
        return any(s.currency == "usd" for s in specs)

    async def close(self) -> None:
        """At shutdown: stop the background work and close the replaced clients still open."""
        for task in [*self._tasks, *([self._reaper] if self._reaper else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for _, client in self._retired:
            await client.session.close()
        self._retired.clear()
