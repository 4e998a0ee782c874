"""The runtime snapshot: what the node sells, through which providers, at which prices and within which
rate limits, as of one version. Never changed once made; a change makes a new one and replaces it whole.

``RuntimeHolder`` is the one place the current snapshot lives (``Node.runtime``). The pipeline reads
``holder.current`` once at the start of a request and uses only that snapshot for the whole request
(routing, aliases, prices, limits), so no request sees a mix of two versions. Who changes something
replaces the snapshot: the managed catalogue (providers, prices, aliases, switched-off models from the
files and the database), the model-list refresh (the providers' ``/models``), the operator and the
limits job (per-key rate limits). A replacement is synchronous: no other task runs between reading the
current snapshot and swapping in the new one, so two writers never lose each other's change.

What a snapshot does not hold is what the providers tell us as requests go: each provider's breakers
and the ids its ``/models`` listed (``Provider.breaker``, ``Provider.listed``) are shared by every
version that keeps the provider, as a breaker that opened must stay open whichever version a request
started with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cached_property
from typing import Any

from routstr.core.pricing import ModelPrice, PriceBook
from routstr.limits import LimitPolicy
from routstr.upstream.aliases import Patterns
from routstr.upstream.providers import Provider
from routstr.upstream.spec import ProviderSpec


@dataclass(frozen=True, slots=True)
class UpstreamModel:
    id: str
    name: str
    created: int
    context_length: int | None
    owned_by: str


@dataclass(frozen=True)
class Effective:
    """What the node sells once the database's settings are laid over the files' (see
    ``managed.effective``); read-only, as every part of a snapshot."""

    specs: tuple[ProviderSpec, ...]
    prices: PriceBook
    aliases: Mapping[str, tuple[str, ...]]  # exact aliases: public id -> provider model ids
    disabled: frozenset[str]
    overridden: frozenset[str]  # models whose price comes from the database
    patterns: Mapping[str, str] = field(default_factory=dict)  # wildcard alias -> its one target

    def targets(self, model: str) -> tuple[str, ...]:
        """The provider model ids a public id stands for: an exact alias's, a wildcard alias's one
        target, else itself."""
        if model in self.aliases:
            return self.aliases[model]
        return (self.patterns[model],) if model in self.patterns else (model,)

    @cached_property
    def matcher(self) -> Patterns:
        """The wildcard aliases, most specific first (made once per version)."""
        return Patterns(self.patterns)


@dataclass(frozen=True)
class Runtime:
    """One version of everything a request reads that can change while the node runs."""

    version: int
    providers: tuple[Provider, ...]  # the providers in rotation, their specs those of ``offer``
    offer: Effective  # prices, aliases, switched-off models
    limits: LimitPolicy  # the rate limits: the node's defaults and the per-key overrides
    models: Mapping[str, UpstreamModel] = field(default_factory=dict)  # the providers' model lists, merged
    # some provider may serve any model (no model list known, not restricted): priced models are
    # listed then; otherwise only what the providers list
    open_list: bool = True
    # the prices resolved under this version (model -> (BTC/USD rate, price)): a cache of a pure
    # function of the snapshot and the rate, never copied into the next version
    resolved: dict[str, tuple[Decimal | None, ModelPrice]] = field(
        init=False, default_factory=dict, repr=False, compare=False
    )

    @property
    def prices(self) -> PriceBook:
        return self.offer.prices

    @property
    def aliases(self) -> Mapping[str, tuple[str, ...]]:
        return self.offer.aliases

    @property
    def disabled(self) -> frozenset[str]:
        return self.offer.disabled

    def resolve(self, model: str) -> str:
        """The model a request is served, priced and billed as: its own id when ``/v1/models`` lists
        it, else the target of the most specific wildcard alias it matches, else its own id (which
        then answers 404 ``model_not_found``). Dict lookups on the hot path; patterns only for ids
        the node does not list."""
        matcher = self.offer.matcher
        if not matcher or self.lists(model):
            return model
        return matcher.match(model) or model

    def lists(self, model: str) -> bool:
        """Does ``/v1/models`` list this id? A provider's model (only those of a restricted provider's
        ``models``), an exact alias, or a model priced explicitly while some provider's list is open
        (unknown, so it may serve it); not one switched off."""
        if model in self.offer.disabled:
            return False
        return (
            model in self.models
            or model in self.offer.aliases
            or (self.open_list and model in self.offer.prices.models)
        )

    def listed_ids(self) -> list[str]:
        """Models on offer: the providers', the exact aliases, and any priced explicitly in the
        pricing file (or by the operator) while some provider's list is open, less those switched
        off. Wildcard aliases are not listed (they stand for ids nobody can list)."""
        priced = set(self.offer.prices.models) if self.open_list else set()
        return sorted((set(self.models) | priced | set(self.offer.aliases)) - self.offer.disabled)


class RuntimeHolder:
    """Holds the current snapshot; the only way to change it is to replace it whole."""

    def __init__(self, first: Runtime) -> None:
        self._current = first

    @property
    def current(self) -> Runtime:
        """The snapshot in force: read it once and keep it for as long as one request (or one view)
        needs a consistent answer."""
        return self._current

    def replace(self, **changes: Any) -> Runtime:
        """Swap in the current snapshot with ``changes`` (fields of ``Runtime``), one version on, and
        return it. Synchronous: nothing else runs between the read and the swap."""
        new = replace(self._current, version=self._current.version + 1, **changes)
        self._current = new
        return new
