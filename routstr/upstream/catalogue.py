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
from routstr.upstream.aliases import Patterns
from routstr.upstream.providers import Provider

log = logging.getLogger(__name__)

# The defaults of IMAGE_INPUT_TOKENS and MIN_FITTED_MAX_TOKENS (routstr.config reads them from here:
# config imports this package, so this package cannot import config)
IMAGE_INPUT_TOKENS = 4096
MIN_FITTED_OUTPUT = 1024


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
        image_input_tokens: int = IMAGE_INPUT_TOKENS,
        min_fitted_output: int = MIN_FITTED_OUTPUT,
    ) -> None:
        """``btc_usd`` gives the rate to charge USD prices at now, or raises ``StaleRate``.

        ``image_input_tokens`` bounds the prompt tokens one image input can make (its bytes do not:
        a URL is a few bytes), for the reservation and the estimate. ``min_fitted_output`` is the
        least a client's own output limit is lowered to when the balance cannot reserve it
        (MIN_FITTED_MAX_TOKENS; see ``billing.fitting``).
        """
        self.prices = prices
        self.btc_usd = btc_usd
        self.default_max_output = default_max_output
        self.image_input_tokens = image_input_tokens
        self.min_fitted_output = min_fitted_output
        self.models: dict[str, UpstreamModel] = {}
        self.aliases: dict[str, tuple[str, ...]] = {}  # exact aliases (listed under their own id)
        self.patterns = Patterns()  # wildcard aliases (not listed; served as their target)
        # some provider may serve any model (no model list known, not restricted): priced models are
        # listed then; otherwise only what the providers list
        self.open_list = True
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
        self,
        prices: PriceBook,
        aliases: dict[str, tuple[str, ...]],
        disabled: frozenset[str],
        patterns: dict[str, str] | None = None,
    ) -> None:
        """The operator's prices, aliases (exact, and wildcard ones) and switched-off models, as
        changed at run time."""
        self.prices, self.aliases, self.disabled = prices, aliases, disabled
        self.patterns = Patterns(patterns)
        self._resolved.clear()

    def resolve(self, model: str) -> str:
        """The model a request is served, priced and billed as: its own id when ``/v1/models`` lists
        it, else the target of the most specific wildcard alias it matches, else its own id (which
        then answers 404 ``model_not_found``). Dict lookups on the hot path; patterns only for ids
        the node does not list."""
        if not self.patterns or self.lists(model):
            return model
        return self.patterns.match(model) or model

    def lists(self, model: str) -> bool:
        """Does ``/v1/models`` list this id? A provider's model (only those of a restricted provider's
        ``models``), an exact alias, or a model priced explicitly while some provider's list is open
        (unknown, so it may serve it); not one switched off."""
        if model in self.disabled:
            return False
        return (
            model in self.models or model in self.aliases or (self.open_list and model in self.prices.models)
        )

    def set_upstream_models(self, raw: Any) -> None:
        self.models = parse_models(raw)
        self._resolved.clear()

    async def refresh(self, providers: list[Provider], timeout_s: float | None = None) -> None:
        """Each provider's model list, all asked at once (a provider that does not answer, within
        ``timeout_s`` if given, keeps the list it had)."""
        merged: dict[str, UpstreamModel] = {}
        snapshot = list(providers)  # the list may be swapped while we wait (providers changed)
        answers = await asyncio.gather(*(_listing(p, timeout_s) for p in snapshot))
        for provider, listed in zip(snapshot, answers, strict=True):
            for mid, m in offered(provider, listed).items():
                merged.setdefault(mid, m)
        self.open_list = any(p.spec.models is None and not p.listed for p in snapshot)
        if merged or not self.models:
            self.models = merged
            self._resolved.clear()

    async def refresh_forever(self, providers: list[Provider], every_s: float = 300.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.refresh(providers)

    def listed_ids(self) -> list[str]:
        """Models on offer: the providers', the exact aliases, and any priced explicitly in the
        pricing file (or by the operator) while some provider's list is open, less those switched
        off. Wildcard aliases are not listed (they stand for ids nobody can list)."""
        priced = set(self.prices.models) if self.open_list else set()
        return sorted((set(self.models) | priced | set(self.aliases)) - self.disabled)


def offered(provider: Provider, listed: dict[str, UpstreamModel] | None) -> dict[str, UpstreamModel]:
    """What a provider sells: its ``/models``, or, when the operator restricted it (``models = [...]``),
    exactly those models (described by its ``/models`` where it lists them), whatever else it lists."""
    allowed = provider.spec.models
    if allowed is None:
        return listed or {}
    known = listed or {}
    return {mid: known.get(mid) or UpstreamModel(mid, mid, 0, None, "") for mid in sorted(allowed)}


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
