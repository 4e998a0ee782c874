"""The providers a node sells from, and which one answers a request.

Each provider has its own pooled client, a fee (a markup on the listed price, shown in
``/v1/models`` per model as the cheapest offer) and circuit breakers (its connection's, and one per
model that fails: ``breaker.py``). For a model, providers are tried cheapest first; a retryable
failure (no connection, timeout, 429, 5xx) moves on to the next, a 4xx the request itself caused
does not. The user pays once, at the price of the one that answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, Decimal

from routstr.core.pricing import ModelPrice
from routstr.upstream.breaker import Breaker
from routstr.upstream.client import Upstream
from routstr.upstream.spec import ProviderSpec


@dataclass
class Provider:
    spec: ProviderSpec
    client: Upstream
    breaker: Breaker = field(default_factory=Breaker)
    listed: frozenset[str] = frozenset()  # from its /models, refreshed in the background
    answered: bool | None = None  # did its last /models fetch answer (None: not asked yet)
    _priced: dict[ModelPrice, ModelPrice] = field(default_factory=dict)  # listed price -> with the fee

    @property
    def name(self) -> str:
        return self.spec.name

    def serves(self, model: str) -> bool:
        if self.spec.models is not None:
            return model in self.spec.models
        return not self.listed or model in self.listed  # an unknown list: let the provider decide

    def price(self, base: ModelPrice) -> ModelPrice:
        """The listed price with this provider's fee on top (rounded up to the msat per Mtok)."""
        if not self.spec.fee:
            return base
        priced = self._priced.get(base)
        if priced is None:
            if len(self._priced) > 1024:  # USD prices change with the rate: keep the cache small
                self._priced.clear()
            priced = self._priced[base] = self._with_fee(base)
        return priced

    def _with_fee(self, base: ModelPrice) -> ModelPrice:
        f = 1 + self.spec.fee

        def up(v: int | None) -> int | None:
            return None if v is None else int((Decimal(v) * f).to_integral_value(rounding=ROUND_CEILING))

        return replace(
            base,
            prompt_msat_per_mtok=up(base.prompt_msat_per_mtok) or 0,
            completion_msat_per_mtok=up(base.completion_msat_per_mtok) or 0,
            request_msat=up(base.request_msat) or 0,
            cached_prompt_msat_per_mtok=up(base.cached_prompt_msat_per_mtok),
            cache_write_msat_per_mtok=up(base.cache_write_msat_per_mtok),
        )


def route(
    providers: Sequence[Provider],
    model: str,
    aliases: Mapping[str, tuple[str, ...]] | None = None,
    accept: Callable[[Provider], bool] | None = None,
) -> list[tuple[Provider, str]]:
    """Who to try for ``model`` and under which model id: cheapest first, those cooling down left out.

    An alias (one public id for several provider model ids) offers every provider of every target;
    at equal fees the alias's own order decides. ``accept`` leaves out providers that cannot serve
    the endpoint. When every offer is cooling down, the least recently failed one is still tried:
    refusing would make a breaker turn the only upstream off. Empty: nobody serves the model.
    """
    targets = (aliases or {}).get(model) or (model,)
    offers = [(p, t) for t in targets for p in providers if p.serves(t) and (accept is None or accept(p))]
    ready = [(p, t) for p, t in offers if p.breaker.available(t)]
    if not ready and offers:
        return [min(offers, key=lambda offer: offer[0].breaker.last_failure(offer[1]))]
    return sorted(ready, key=lambda offer: offer[0].spec.fee)


def serves_any(providers: Sequence[Provider], model: str, aliases: Mapping[str, tuple[str, ...]]) -> bool:
    targets = aliases.get(model) or (model,)
    return any(p.serves(t) for t in targets for p in providers)
