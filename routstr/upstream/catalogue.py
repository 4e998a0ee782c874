"""The models this node sells: the upstream's list joined with the operator's prices.

Both live in the runtime snapshot (``runtime.py``). The lists are fetched at start-up and refreshed in
the background, each time into a new snapshot; a request never waits for them. Prices are resolved
once per model, rate and snapshot (USD prices need the BTC/USD rate), then served from memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from routstr.core.errors import NotFound, ServiceUnavailable
from routstr.core.pricing import ModelPrice, PriceBook
from routstr.limits import LimitPolicy
from routstr.rates.feed import StaleRate
from routstr.upstream.providers import Provider
from routstr.upstream.runtime import Effective, Runtime, RuntimeHolder, UpstreamModel

__all__ = ["IMAGE_INPUT_TOKENS", "MIN_FITTED_OUTPUT", "Catalogue", "UpstreamModel", "offered", "parse_models"]

log = logging.getLogger(__name__)

# The defaults of IMAGE_INPUT_TOKENS and MIN_FITTED_MAX_TOKENS (routstr.config reads them from here:
# config imports this package, so this package cannot import config)
IMAGE_INPUT_TOKENS = 4096
MIN_FITTED_OUTPUT = 1024


class Catalogue:
    """Prices the models of the runtime snapshot and keeps its model lists fresh (the node's settings
    that never change at run time live here; everything that does is in the snapshot)."""

    def __init__(
        self,
        prices: PriceBook,
        btc_usd: Callable[[], Decimal],
        default_max_output: int,
        image_input_tokens: int = IMAGE_INPUT_TOKENS,
        min_fitted_output: int = MIN_FITTED_OUTPUT,
        runtime: RuntimeHolder | None = None,
    ) -> None:
        """``btc_usd`` gives the rate to charge USD prices at now, or raises ``StaleRate``.

        ``image_input_tokens`` bounds the prompt tokens one image input can make (its bytes do not:
        a URL is a few bytes), for the reservation and the estimate. ``min_fitted_output`` is the
        least a client's own output limit is lowered to when the balance cannot reserve it
        (MIN_FITTED_MAX_TOKENS; see ``billing.fitting``). ``runtime`` is the node's snapshot holder;
        a catalogue made without one (on its own, as in tests) keeps its own, selling ``prices``.
        """
        self.btc_usd = btc_usd
        self.default_max_output = default_max_output
        self.image_input_tokens = image_input_tokens
        self.min_fitted_output = min_fitted_output
        nothing_else = Effective((), prices, {}, frozenset(), frozenset())
        self.runtime = runtime or RuntimeHolder(Runtime(1, (), nothing_else, LimitPolicy()))

    @property
    def models(self) -> Mapping[str, UpstreamModel]:
        """The providers' model lists, merged (of the current snapshot)."""
        return self.runtime.current.models

    def price(self, model: str, rt: Runtime | None = None) -> ModelPrice:
        """The model's price in snapshot ``rt`` (the current one if not given) now; a USD price with
        no fresh BTC/USD rate is a 503, never a guess."""
        rt = rt or self.runtime.current
        cached = rt.resolved.get(model)
        if cached is not None and cached[0] is None:
            return cached[1]  # priced in sats: no rate to check (the hot path)
        if model in rt.offer.disabled:  # never cached, so refused here on every request
            raise NotFound(f"The model {model!r} does not exist on this node", code="model_not_found")
        spec = rt.offer.prices.spec_for(model)
        rate: Decimal | None = None
        if spec.currency == "usd":
            try:
                rate = self.btc_usd()
            except StaleRate as e:
                raise ServiceUnavailable(str(e), code="btc_usd_rate_stale") from None
        if cached is not None and cached[0] == rate:
            return cached[1]
        p = spec.resolve(rate)
        um = rt.models.get(model)
        if p.context_length is None and um is not None and um.context_length:
            p = replace(p, context_length=um.context_length)
        rt.resolved[model] = (rate, p)
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

    def resolve(self, model: str) -> str:
        """``Runtime.resolve`` in the current snapshot (for views; a request keeps its own)."""
        return self.runtime.current.resolve(model)

    def lists(self, model: str) -> bool:
        """``Runtime.lists`` in the current snapshot."""
        return self.runtime.current.lists(model)

    def listed_ids(self) -> list[str]:
        """``Runtime.listed_ids`` of the current snapshot: the models ``/v1/models`` lists."""
        return self.runtime.current.listed_ids()

    async def listing(
        self, providers: Sequence[Provider], timeout_s: float | None = None
    ) -> tuple[dict[str, UpstreamModel], bool]:
        """Each provider's model list, all asked at once (a provider that does not answer, within
        ``timeout_s`` if given, keeps the list it had): the lists merged, and whether some provider
        may serve any model (its list unknown and not restricted)."""
        merged: dict[str, UpstreamModel] = {}
        answers = await asyncio.gather(*(_listing(p, timeout_s) for p in providers))
        for provider, listed in zip(providers, answers, strict=True):
            for mid, m in offered(provider, listed).items():
                merged.setdefault(mid, m)
        return merged, any(p.spec.models is None and not p.listed for p in providers)

    async def refresh(self, timeout_s: float | None = None) -> None:
        """Ask the providers in rotation for their model lists and put them in a new snapshot (when
        nobody lists anything, the lists known so far stay). If the providers were replaced while
        they answered, their replacement came with fresh lists: this answer is dropped."""
        before = self.runtime.current
        merged, open_list = await self.listing(before.providers, timeout_s)
        now = self.runtime.current
        models = merged if merged or not now.models else now.models
        if now.providers is not before.providers or (models, open_list) == (now.models, now.open_list):
            return
        self.runtime.replace(models=models, open_list=open_list)

    async def refresh_forever(self, every_s: float = 300.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.refresh()


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
