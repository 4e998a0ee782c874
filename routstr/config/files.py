"""The files a setting points at: the providers file (PROVIDERS_FILE) and the pricing file (PRICING_FILE)."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from routstr.config.env import http_url
from routstr.core.errors import ConfigError
from routstr.core.pricing import PriceBook
from routstr.upstream.aliases import alias_problem
from routstr.upstream.spec import ProviderSpec


def load_providers(
    path: str, env: Mapping[str, str]
) -> tuple[tuple[ProviderSpec, ...], dict[str, tuple[str, ...]]]:
    """The providers file: ``[[providers]]`` tables with name, base_url, api_key (or api_key_env),
    fee and models."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"PROVIDERS_FILE={path!r} does not exist; point it at a .toml providers file")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"PROVIDERS_FILE={path}: {e}") from None
    specs = []
    for i, entry in enumerate(data.get("providers") or ()):
        where = f"PROVIDERS_FILE {path}, provider {i + 1}"
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("base_url"):
            raise ConfigError(f"{where}: needs a name and a base_url")
        kind = entry.get("type", "openai")
        if kind not in ("openai", "anthropic"):
            raise ConfigError(f"{where}: type must be openai (any OpenAI-compatible API) or anthropic")
        key = entry.get("api_key") or env.get(str(entry.get("api_key_env", "")), "")
        try:
            fee = Decimal(str(entry.get("fee", 0)))
        except InvalidOperation:
            raise ConfigError(f"{where}: fee must be a number (0.05 for +5%)") from None
        if not fee.is_finite() or fee < 0:
            raise ConfigError(f"{where}: fee must be a non-negative number")
        models = entry.get("models")
        specs.append(
            ProviderSpec(
                name=str(entry["name"]),
                base_url=http_url(str(entry["base_url"]), f"{where}: base_url"),
                api_key=str(key),
                fee=fee,
                models=frozenset(str(m) for m in models) if isinstance(models, list) else None,
                kind=kind,
            )
        )
    if len({s.name for s in specs}) != len(specs):
        raise ConfigError(f"PROVIDERS_FILE {path}: provider names must be unique")
    return tuple(specs), _aliases(data.get("aliases") or {}, path)


def _aliases(raw: Any, path: str) -> dict[str, tuple[str, ...]]:
    """``[aliases]``: ``public-id = ["provider-model", …]`` (or one id as a string), and wildcard
    aliases ``"claude-*" = "claude-haiku-4-5"`` (``routstr.upstream.aliases``)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"PROVIDERS_FILE {path}: [aliases] must be a table of model lists")
    out: dict[str, tuple[str, ...]] = {}
    for public, targets in raw.items():
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise ConfigError(f"PROVIDERS_FILE {path}: alias {public!r} must list one or more model ids")
        if (problem := alias_problem(str(public), tuple(targets))) is not None:
            raise ConfigError(f"PROVIDERS_FILE {path}: {problem}")
        out[str(public)] = tuple(targets)
    return out


def load_price_book(path: str) -> PriceBook:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"PRICING_FILE={path!r} does not exist; point it at a .toml or .json pricing file")
    try:
        raw = p.read_bytes()
        data: dict[str, Any] = tomllib.loads(raw.decode()) if p.suffix != ".json" else json.loads(raw)
        return PriceBook.from_mapping(data)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"PRICING_FILE={path}: {e}") from None
