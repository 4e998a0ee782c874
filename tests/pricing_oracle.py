"""What a request should cost, computed by the tests from the price the node advertises and the usage,
never with the node's own pricing code (``routstr/core/pricing.py`` is not imported here: a bug there
must show up as a test that disagrees with it).

The rule, as the README writes it down ("Pricing file", "Billing", "What you pay for"):

- A price is a whole number of msat per million tokens: sats × 1000, or USD × 10^11 / BTC_USD rounded
  up to the msat per Mtok; a per-request price is whole msat the same way. ``GET /v1/models`` shows it
  in ``sats_pricing`` as sats per token and sats per request (so msat/Mtok = sats/token × 10^9).
- A provider's ``fee`` multiplies each price by 1 + fee, rounded up to the msat per Mtok (the listing
  shows the price before the fee; ``/v1/info`` shows the fee).
- A cost is rounded up once, at the end: ceil(Σ tokens × msat/Mtok / 10^6) + requests × request msat.
  Prompt tokens read from or written to a provider's cache are priced apart only when the operator set
  ``cached_prompt_*`` / ``cache_write_*`` (else at the prompt price); the listing does not show those
  two prices, so a test that needs them takes them from the pricing file it wrote (``operator_prices``).
- A reservation is the most a request can cost: the prompt bound (body bytes + 4096 per image) at the
  dearest input price (the cache-write price when it is above the prompt price) plus the output limit
  × generations at the completion price, rounded up once, plus the request price.
- Without usage the node bills an estimate: one token per 4 UTF-8 bytes, rounded up, at least one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, Decimal
from typing import Any

import aiohttp

MTOK = 1_000_000
MSAT_PER_SAT = 1000
MSAT_PER_BTC = 100_000_000_000
BYTES_PER_TOKEN = 4  # the estimate's rule


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _ceil(d: Decimal) -> int:
    return int(d.to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class Prices:
    """One model's price in the units the node charges in: msat per million tokens, msat per request."""

    prompt: int
    completion: int
    request: int = 0
    cached_prompt: int | None = None  # None: cache reads cost the prompt price
    cache_write: int | None = None  # None: cache writes cost the prompt price

    def with_fee(self, fee: str | Decimal) -> Prices:
        """The price when a provider with this ``fee`` (0.1 = +10 %) answers."""
        f = 1 + Decimal(str(fee))

        def up(v: int | None) -> int | None:
            return None if v is None else _ceil(Decimal(v) * f)

        return Prices(
            _ceil(self.prompt * f),
            _ceil(self.completion * f),
            _ceil(self.request * f),
            up(self.cached_prompt),
            up(self.cache_write),
        )

    def cost(
        self, prompt: int, completion: int, *, cached: int = 0, written: int = 0, requests: int = 1
    ) -> int:
        """What a usage costs: ``prompt`` counts every prompt token (OpenAI's convention), ``cached`` and
        ``written`` say how many of them were read from or written to the provider's cache."""
        cached = cached if self.cached_prompt is not None else 0
        written = written if self.cache_write is not None else 0
        plain = max(prompt - cached - written, 0)
        variable = (
            plain * self.prompt
            + cached * (self.cached_prompt or 0)
            + written * (self.cache_write or 0)
            + completion * self.completion
        )
        return ceil_div(variable, MTOK) + requests * self.request

    def anthropic_cost(self, usage: dict[str, Any]) -> int:
        """What an Anthropic ``usage`` object costs (its ``input_tokens`` leave the cache's tokens out)."""
        read = int(usage.get("cache_read_input_tokens") or 0)
        written = int(usage.get("cache_creation_input_tokens") or 0)
        prompt = int(usage["input_tokens"]) + read + written
        return self.cost(prompt, int(usage["output_tokens"]), cached=read, written=written)

    @property
    def dearest_input(self) -> int:
        return max(self.prompt, self.cache_write or 0)

    def reservation(self, prompt_bound: int, output_tokens: int, requests: int = 1) -> int:
        """What the node holds before forwarding: ``output_tokens`` is the limit × generations."""
        variable = prompt_bound * self.dearest_input + output_tokens * self.completion
        return ceil_div(variable, MTOK) + requests * self.request

    def fitted(self, balance: int, prompt_bound: int, generations: int = 1) -> int:
        """The output limit per generation a balance reserves: the largest n with
        ceil((bound × input + generations × n × completion) / 10^6) + request <= balance."""
        room = (balance - self.request) * MTOK - prompt_bound * self.dearest_input
        return room // self.completion // generations


# -- where a price comes from ---------------------------------------------------------------------------


async def advertised(http: aiohttp.ClientSession, v1: str) -> dict[str, dict[str, Any]]:
    """``GET /v1/models``: each listed model's entry, by id."""
    async with http.get(v1 + "/models") as r:
        assert r.status == 200, await r.text()
        return {m["id"]: m for m in (await r.json())["data"]}


def _whole(value: Any, scale: int, what: str) -> int:
    """An advertised float (sats per token or per request) as the whole msat amount it stands for."""
    exact = Decimal(str(value)) * scale
    whole = int(exact.to_integral_value())
    assert abs(exact - whole) < Decimal("0.01"), f"{what} = {value} is not a whole msat amount"
    return whole


def from_listing(entry: dict[str, Any]) -> Prices:
    """The price of one ``/v1/models`` entry, from its ``sats_pricing`` (sats per token, per request)."""
    sp = entry["sats_pricing"]
    return Prices(
        _whole(sp["prompt"], MSAT_PER_SAT * MTOK, "prompt"),
        _whole(sp["completion"], MSAT_PER_SAT * MTOK, "completion"),
        _whole(sp["request"], MSAT_PER_SAT, "request"),
    )


def msat_prices(entry: dict[str, Any]) -> tuple[int, int, int]:
    """(prompt msat per Mtok, completion msat per Mtok, msat per request) of a ``/v1/models`` entry."""
    p = from_listing(entry)
    return p.prompt, p.completion, p.request


async def advertised_prices(http: aiohttp.ClientSession, v1: str, model: str) -> Prices:
    return from_listing((await advertised(http, v1))[model])


def operator_prices(pricing_toml: str, model: str, btc_usd: Decimal | int | None = None) -> Prices:
    """A model's price as a pricing file (the test's own) states it, cache prices included, converted
    by the README's rule. For what the listing cannot show; check it against the listing."""
    data = tomllib.loads(pricing_toml)
    entry = (data.get("models") or {}).get(model, data.get("default", {}))
    usd = any(k.endswith("_usd") or "_usd_" in k for k in entry)
    if usd:
        assert btc_usd, "a USD price needs the BTC/USD rate"
        per = Decimal(MSAT_PER_BTC) / Decimal(btc_usd)
        unit = "usd"
    else:
        per, unit = Decimal(MSAT_PER_SAT), "sats"

    def get(name: str) -> int | None:
        key = f"{name}_{unit}_per_mtok" if name != "request" else f"request_{unit}"
        return None if key not in entry else _ceil(Decimal(str(entry[key])) * per)

    return Prices(
        get("prompt") or 0,
        get("completion") or 0,
        get("request") or 0,
        get("cached_prompt"),
        get("cache_write"),
    )


def listed_part(p: Prices) -> Prices:
    """What the listing shows of a price (it leaves the cache prices out)."""
    return replace(p, cached_prompt=None, cache_write=None)


# -- other rules ----------------------------------------------------------------------------------------


def estimate_tokens(text_bytes: int) -> int:
    """The node's estimate without usage: ceil(bytes / 4), at least one token."""
    return max(1, ceil_div(text_bytes, BYTES_PER_TOKEN))
