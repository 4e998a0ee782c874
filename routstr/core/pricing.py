"""Prices and costs, to the msat.

A price is kept as integer msat per million tokens (rounded up from USD, so a conversion never
undercharges), and a cost is rounded up once, at the end. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from routstr.core.money import MSAT_PER_BTC, MSAT_PER_SAT, ceil_div
from routstr.core.usage import Usage

MTOK = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """What one model costs: per-token rates in msat per million tokens plus a per-request fee."""

    prompt_msat_per_mtok: int
    completion_msat_per_mtok: int
    request_msat: int = 0
    max_output_tokens: int | None = None
    context_length: int | None = None
    cached_prompt_msat_per_mtok: int | None = None  # prompt tokens read from a cache (None: as prompt)
    cache_write_msat_per_mtok: int | None = None  # prompt tokens written to a cache (None: as prompt)

    def cost_msat(self, prompt_tokens: int, completion_tokens: int) -> int:
        variable = (
            prompt_tokens * self.prompt_msat_per_mtok + completion_tokens * self.completion_msat_per_mtok
        )
        return ceil_div(variable, MTOK) + self.request_msat

    def usage_cost_msat(self, u: Usage) -> int:
        """What a request cost, cache reads and writes priced apart when the operator set prices."""
        cached = u.cached_tokens if self.cached_prompt_msat_per_mtok is not None else 0
        written = u.cache_write_tokens if self.cache_write_msat_per_mtok is not None else 0
        plain = max(u.prompt_tokens - cached - written, 0)
        variable = (
            plain * self.prompt_msat_per_mtok
            + cached * (self.cached_prompt_msat_per_mtok or 0)
            + written * (self.cache_write_msat_per_mtok or 0)
            + u.completion_tokens * self.completion_msat_per_mtok
        )
        return ceil_div(variable, MTOK) + self.request_msat * u.requests

    def max_cost_msat(self, prompt_bound_tokens: int, max_output_tokens: int, requests: int = 1) -> int:
        """The most a request can cost: the reservation taken before it is forwarded (a prompt
        token is counted at the dearest input price, which for cache writes may exceed the plain one)."""
        dearest = max(self.prompt_msat_per_mtok, self.cache_write_msat_per_mtok or 0)
        variable = prompt_bound_tokens * dearest + max_output_tokens * self.completion_msat_per_mtok
        return ceil_div(variable, MTOK) + self.request_msat * requests

    def affordable_output_tokens(self, budget_msat: int, prompt_bound_tokens: int) -> int:
        """How many output tokens ``budget_msat`` reserves after the prompt (0 if not even that)."""
        left = budget_msat - self.max_cost_msat(prompt_bound_tokens, 0)
        if left <= 0:
            return 0
        if self.completion_msat_per_mtok == 0:
            return 2**31
        # costs round up, so step down until it fits
        n = (left * MTOK) // self.completion_msat_per_mtok
        while n > 0 and self.max_cost_msat(prompt_bound_tokens, n) > budget_msat:
            n -= 1
        return n


@dataclass(frozen=True, slots=True)
class PriceSpec:
    """A price as an operator writes it: sats or USD per million tokens, sats or USD per request."""

    prompt: Decimal
    completion: Decimal
    request: Decimal = Decimal(0)
    currency: str = "sat"  # "sat" or "usd"
    max_output_tokens: int | None = None
    context_length: int | None = None
    cached_prompt: Decimal | None = None
    cache_write: Decimal | None = None

    def resolve(self, btc_usd: Decimal | None) -> ModelPrice:
        if self.currency == "sat":
            per = Decimal(MSAT_PER_SAT)
        else:
            if not btc_usd or btc_usd <= 0:
                raise ValueError("a USD price needs a BTC/USD rate")
            per = Decimal(MSAT_PER_BTC) / btc_usd
        return ModelPrice(
            prompt_msat_per_mtok=_ceil(self.prompt * per),
            completion_msat_per_mtok=_ceil(self.completion * per),
            request_msat=_ceil(self.request * per),
            max_output_tokens=self.max_output_tokens,
            context_length=self.context_length,
            cached_prompt_msat_per_mtok=None
            if self.cached_prompt is None
            else _ceil(self.cached_prompt * per),
            cache_write_msat_per_mtok=None if self.cache_write is None else _ceil(self.cache_write * per),
        )

    def as_mapping(self) -> dict[str, Any]:
        """The price as the pricing file writes it (what ``parse_spec`` reads back), numbers as strings."""
        keys = _SAT_KEYS if self.currency == "sat" else _USD_KEYS
        values = (self.prompt, self.completion, self.request, self.cached_prompt, self.cache_write)
        out: dict[str, Any] = {k: str(v) for k, v in zip(keys, values, strict=True) if v is not None}
        if self.max_output_tokens is not None:
            out["max_output_tokens"] = self.max_output_tokens
        if self.context_length is not None:
            out["context_length"] = self.context_length
        return out


def _ceil(d: Decimal) -> int:
    return int(d.to_integral_value(rounding=ROUND_CEILING))


DEFAULT_SPEC = PriceSpec(prompt=Decimal(1000), completion=Decimal(3000))


@dataclass(slots=True)
class PriceBook:
    """Per-model price specs plus a default for models the operator did not list."""

    default: PriceSpec = DEFAULT_SPEC
    models: dict[str, PriceSpec] = field(default_factory=dict)

    def spec_for(self, model: str) -> PriceSpec:
        return self.models.get(model, self.default)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> PriceBook:
        """Parse the pricing file's content (see README: "Pricing file")."""
        default = parse_spec(data["default"], "default") if "default" in data else DEFAULT_SPEC
        models = {
            name: parse_spec(entry, f"models.{name}") for name, entry in (data.get("models") or {}).items()
        }
        return cls(default=default, models=models)


_SAT_KEYS = (
    "prompt_sats_per_mtok",
    "completion_sats_per_mtok",
    "request_sats",
    "cached_prompt_sats_per_mtok",
    "cache_write_sats_per_mtok",
)
_USD_KEYS = (
    "prompt_usd_per_mtok",
    "completion_usd_per_mtok",
    "request_usd",
    "cached_prompt_usd_per_mtok",
    "cache_write_usd_per_mtok",
)


def parse_spec(entry: dict[str, Any], where: str) -> PriceSpec:
    if not isinstance(entry, dict):
        raise ValueError(f"pricing {where}: expected a table of prices")
    has_sat = any(k in entry for k in _SAT_KEYS)
    has_usd = any(k in entry for k in _USD_KEYS)
    if has_sat == has_usd:
        raise ValueError(
            f"pricing {where}: give prices either in sats ({', '.join(_SAT_KEYS)}) "
            f"or in USD ({', '.join(_USD_KEYS)})"
        )
    keys = _SAT_KEYS if has_sat else _USD_KEYS
    unknown = set(entry) - set(_SAT_KEYS) - set(_USD_KEYS) - {"max_output_tokens", "context_length"}
    if unknown:
        raise ValueError(f"pricing {where}: unknown field(s) {', '.join(sorted(unknown))}")
    values: list[Decimal | None] = []
    for k in keys:
        if k not in entry:
            values.append(None)
            continue
        try:
            v = Decimal(str(entry[k]))
        except ArithmeticError:
            raise ValueError(f"pricing {where}.{k}: not a number") from None
        if v < 0 or not v.is_finite():
            raise ValueError(f"pricing {where}.{k}: must be a non-negative number")
        values.append(v)
    zero = Decimal(0)
    return PriceSpec(
        prompt=values[0] or zero,
        completion=values[1] or zero,
        request=values[2] or zero,
        currency="sat" if has_sat else "usd",
        max_output_tokens=_opt_int(entry, "max_output_tokens", where),
        context_length=_opt_int(entry, "context_length", where),
        cached_prompt=values[3],
        cache_write=values[4],
    )


def _opt_int(entry: dict[str, Any], key: str, where: str) -> int | None:
    v = entry.get(key)
    if v is None:
        return None
    if not isinstance(v, int) or v <= 0:
        raise ValueError(f"pricing {where}.{key}: must be a positive integer")
    return v
