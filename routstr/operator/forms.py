"""Reading the operator's provider and model bodies (admin API, dashboard, CLI): every mistake is a 400
that names the field.

Prices are read by the pricing file's own parser (``core.pricing.parse_spec``), so a price set here
follows exactly the rules of ``PRICING_FILE``.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

from routstr.core.errors import InvalidRequest
from routstr.core.pricing import parse_spec
from routstr.upstream.aliases import alias_problem, is_pattern

PROVIDER_FIELDS = frozenset({"name", "base_url", "kind", "api_key", "fee", "models", "enabled"})
MODEL_FIELDS = frozenset({"price", "enabled", "aliases"})
KINDS = ("openai", "anthropic")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_LIST = 1000
# a price number past this is a typo, and past 2^63 it no longer fits the JSON of the answer (a 500)
MAX_PRICE = Decimal(10) ** 12
MAX_FEE = Decimal(1000)  # a markup of 100,000%: more is a typo, and 1e400 was taken and stored


def clean(v: str) -> bool:
    """No control characters (NUL, newlines: PostgreSQL refuses NUL in text, a header refuses
    newlines) and no lone surrogates (not encodable as UTF-8)."""
    return not any(unicodedata.category(c) in ("Cc", "Cs") for c in v)


def _bad(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(message, details={"param": param})


def _unknown(body: dict[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise _bad(extra[0], f"unknown field(s): {', '.join(extra)}; expected {', '.join(sorted(allowed))}")


def provider_name(v: Any) -> str:
    if not isinstance(v, str) or not _NAME.match(v):
        raise _bad("name", "'name' must be 1-64 letters, digits, '.', '_' or '-'")
    return v


def base_url(v: Any) -> str:
    u = urlparse(v) if isinstance(v, str) and clean(v.strip()) else None
    if u is None or u.scheme not in ("http", "https") or not u.netloc:
        raise _bad("base_url", "'base_url' must be an http(s) URL, e.g. https://api.openai.com/v1")
    return str(v).strip().rstrip("/")


def kind(v: Any) -> str:
    if v not in KINDS:
        raise _bad("kind", "'kind' must be openai (any OpenAI-compatible API) or anthropic")
    return str(v)


def api_key(v: Any) -> str:
    """A key to store; "" (or null) means none. Whitespace inside would break the header."""
    if v is None:
        return ""
    if not isinstance(v, str) or len(v) > 4096 or any(c.isspace() for c in v.strip()) or not clean(v.strip()):
        raise _bad("api_key", "'api_key' must be a string without spaces (or null for none)")
    return v.strip()


def fee(v: Any) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise _bad("fee", "'fee' must be a number (0.05 for +5%)")
    try:
        d = Decimal(str(v))
        ok = d.is_finite() and 0 <= d <= MAX_FEE
    except (InvalidOperation, ArithmeticError):
        ok = False
    if not ok:
        raise _bad("fee", f"'fee' must be a number from 0 to {MAX_FEE} (0.05 for +5%)")
    return d


def model_list(v: Any, param: str) -> tuple[str, ...]:
    if (
        not isinstance(v, list)
        or len(v) > _MAX_LIST
        or not all(isinstance(m, str) and m.strip() and len(m) <= 255 and clean(m) for m in v)
    ):
        raise _bad(param, f"'{param}' must be a list of model ids")
    return tuple(dict.fromkeys(m.strip() for m in v))


def enabled(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _bad("enabled", "'enabled' must be true or false")
    return v


def provider_changes(body: dict[str, Any], *, new: bool) -> dict[str, Any]:
    """The fields of a provider body, checked (a new provider needs a name and a base_url).
    ``api_key`` stays in the clear here: the caller seals it."""
    _unknown(body, PROVIDER_FIELDS)
    if new:
        for required in ("name", "base_url"):
            if required not in body:
                raise _bad(required, f"'{required}' is required")
    out: dict[str, Any] = {}
    if "name" in body:
        out["name"] = provider_name(body["name"])
    if "base_url" in body:
        out["base_url"] = base_url(body["base_url"])
    if "kind" in body or new:
        out["kind"] = kind(body.get("kind", "openai"))
    if "api_key" in body or new:
        out["api_key"] = api_key(body.get("api_key"))
    if "fee" in body or new:
        out["fee"] = fee(body.get("fee", 0))
    if "models" in body or new:
        raw = body.get("models")
        out["models"] = None if raw is None else model_list(raw, "models")
    if "enabled" in body or new:
        out["enabled"] = enabled(body.get("enabled", True))
    return out


def model_id(model: str) -> str:
    """A model id from the URL: 1-255 characters, none of them control characters."""
    if not model or len(model) > 255 or not clean(model):
        raise _bad("model", "a model id is 1-255 characters, none of them control characters")
    return model


def _price(model: str, price: Any) -> None:
    """A pricing-file table, its numbers up to ``MAX_PRICE``."""
    try:
        parse_spec(price, f"models.{model}")
    except ValueError as e:
        raise _bad("price", str(e) or "not a valid price") from None
    except ArithmeticError:
        raise _bad("price", "'price' holds something that is not a number") from None
    for k, v in price.items():
        if isinstance(v, int | float) and not isinstance(v, bool) and not abs(v) <= MAX_PRICE:
            raise _bad("price", f"'price.{k}' must be at most {MAX_PRICE}")
        if isinstance(v, str):
            try:
                too_big = not abs(Decimal(v)) <= MAX_PRICE
            except ArithmeticError:
                too_big = True
            if too_big:
                raise _bad("price", f"'price.{k}' must be at most {MAX_PRICE}")


def model_changes(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """``price`` (a pricing-file table, or null for the file's), ``enabled``, ``aliases`` (a list of
    provider model ids; [] removes an alias the providers file sets; null: no alias set here).
    A model id with ``*`` is a wildcard alias (``routstr.upstream.aliases``): one target, no price
    of its own (its requests are priced as the target)."""
    _unknown(body, MODEL_FIELDS)
    model_id(model)
    out: dict[str, Any] = {}
    if "price" in body:
        price = body["price"]
        if price is not None and is_pattern(model):
            raise _bad(
                "price", "a wildcard alias has no price of its own: its requests are priced as its target"
            )
        if price is not None:
            _price(model, price)
        out["price"] = price
    if "enabled" in body:
        out["enabled"] = enabled(body["enabled"])
    if "aliases" in body:
        raw = body["aliases"]
        out["aliases"] = None if raw is None else model_list(raw, "aliases")
        problem = alias_problem(model, out["aliases"]) if out["aliases"] else None
        if problem is not None:
            raise _bad("aliases", problem[0].upper() + problem[1:])
    return out
