"""The models this node sells: the upstream's list joined with the operator's prices.

Fetched at start-up and refreshed in the background; a request never waits for it. Prices are
resolved once per model and rate (USD prices need the BTC/USD rate), then served from memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from routstr.core.errors import NotFound, ServiceUnavailable
from routstr.core.pricing import ModelPrice, PriceBook
from routstr.rates.feed import StaleRate
from routstr.upstream.providers import Provider

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UpstreamModel:
    id: str
    name: str
    created: int
    context_length: int | None
    owned_by: str


class Catalogue:
    def __init__(
        self,
        prices: PriceBook,
        btc_usd: Callable[[], Decimal],
        default_max_output: int,
        image_input_tokens: int = 4096,
    ) -> None:
        """``btc_usd`` gives the rate to charge USD prices at now, or raises ``StaleRate``.

        ``image_input_tokens`` bounds the prompt tokens one image input can make (its bytes do not:
        a URL is a few bytes), for the reservation and the estimate.
        """
        self.prices = prices
        self.btc_usd = btc_usd
        self.default_max_output = default_max_output
        self.image_input_tokens = image_input_tokens
        self.models: dict[str, UpstreamModel] = {}
        self.aliases: dict[str, tuple[str, ...]] = {}
        self.disabled: frozenset[str] = frozenset()  # switched off by the operator: not sold, not listed
        self._resolved: dict[str, tuple[Decimal | None, ModelPrice]] = {}  # model -> (rate, price)

    def price(self, model: str) -> ModelPrice:
        """The model's price now; a USD price with no fresh BTC/USD rate is a 503, never a guess."""
        cached = self._resolved.get(model)
        if cached is not None and cached[0] is None:
            return cached[1]  # priced in sats: no rate to check (the hot path)
        if model in self.disabled:  # never cached, so refused here on every request
            raise NotFound(f"The model {model!r} does not exist on this node", code="model_not_found")
        spec = self.prices.spec_for(model)
        rate: Decimal | None = None
        if spec.currency == "usd":
            try:
                rate = self.btc_usd()
            except StaleRate as e:
                raise ServiceUnavailable(str(e), code="btc_usd_rate_stale") from None
        if cached is not None and cached[0] == rate:
            return cached[1]
        p = spec.resolve(rate)
        um = self.models.get(model)
        if p.context_length is None and um is not None and um.context_length:
            p = replace(p, context_length=um.context_length)
        self._resolved[model] = (rate, p)
        return p

    def btc_usd_now(self) -> Decimal | None:
        """The rate, or None while it is stale (for listings, which must not fail)."""
        try:
            return self.btc_usd()
        except StaleRate:
            return None

    def max_output(self, price: ModelPrice) -> int:
        """The output tokens reserved for a request that set no limit.

        The model's own output limit when the operator priced it; otherwise DEFAULT_MAX_OUTPUT_TOKENS
        (within the context length). A longer answer is still charged in full from the balance at
        settlement (never below zero); reserving a whole context window would lock most balances.
        """
        if price.max_output_tokens:
            return price.max_output_tokens
        if price.context_length:
            return min(price.context_length, self.default_max_output)
        return self.default_max_output

    def configure(
        self, prices: PriceBook, aliases: dict[str, tuple[str, ...]], disabled: frozenset[str]
    ) -> None:
        """The operator's prices, aliases and switched-off models, as changed at run time."""
        self.prices, self.aliases, self.disabled = prices, aliases, disabled
        self._resolved.clear()

    def set_upstream_models(self, raw: Any) -> None:
        self.models = parse_models(raw)
        self._resolved.clear()

    async def refresh(self, providers: list[Provider], timeout_s: float | None = None) -> None:
        """Each provider's model list, all asked at once (a provider that does not answer, within
        ``timeout_s`` if given, keeps the list it had)."""
        merged: dict[str, UpstreamModel] = {}
        snapshot = list(providers)  # the list may be swapped while we wait (providers changed)
        answers = await asyncio.gather(*(_listing(p, timeout_s) for p in snapshot))
        for listed in answers:
            for mid, m in (listed or {}).items():
                merged.setdefault(mid, m)
        if merged or not self.models:
            self.models = merged
            self._resolved.clear()

    async def refresh_forever(self, providers: list[Provider], every_s: float = 300.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.refresh(providers)

    def listed_ids(self) -> list[str]:
        """Models on offer: the providers', the aliases, and any priced explicitly in the pricing file
        (or by the operator), less those switched off."""
        return sorted((set(self.models) | set(self.prices.models) | set(self.aliases)) - self.disabled)


async def _listing(p: Provider, timeout_s: float | None) -> dict[str, UpstreamModel] | None:
    try:
        listed = parse_models(await asyncio.wait_for(p.client.get_json("/models"), timeout_s))
    except Exception as e:  # the node keeps serving with what it knew
        log.warning("could not fetch the model list of provider %s: %s", p.name, type(e).__name__)
        p.answered = False
        return None
    p.listed = frozenset(listed)
    p.answered = True
    return listed


def parse_models(raw: Any) -> dict[str, UpstreamModel]:
    """An OpenAI-style ``/models`` answer (with OpenRouter's and vLLM's context fields)."""
    data = raw.get("data") if isinstance(raw, dict) else None
    models: dict[str, UpstreamModel] = {}
    for m in data or ():
        if not isinstance(m, dict) or not isinstance(m.get("id"), str):
            continue
        ctx = m.get("context_length") or m.get("max_model_len") or m.get("context_window")
        models[m["id"]] = UpstreamModel(
            id=m["id"],
            name=str(m.get("name") or m["id"]),
            created=int(m.get("created") or 0),
            context_length=int(ctx) if isinstance(ctx, int) and ctx > 0 else None,
            owned_by=str(m.get("owned_by") or ""),
        )
    return models
