"""A provider as the operator configures it (no I/O: read by the configuration)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class ProviderSpec:
    """A provider as configured (file or environment)."""

    name: str
    base_url: str
    api_key: str = ""
    fee: Decimal = Decimal(0)  # 0.05 = the listed price + 5%
    models: frozenset[str] | None = None  # None: whatever its /models lists
    kind: str = "openai"  # "openai" (OpenAI-compatible) or "anthropic" (Anthropic's Messages API)
