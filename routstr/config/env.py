"""Reading one setting from the environment: its type, its range, and the line that says what to fix.

Each reader takes the setting's default from the caller (``DEFAULTS`` in ``routstr.config.load``) and
returns it when the variable is unset or empty, so no default is written here.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from ipaddress import IPv4Network, IPv6Network, ip_network
from urllib.parse import urlparse

from routstr.core.errors import ConfigError
from routstr.discovery.keys import NostrKeyError, parse_secret_key
from routstr.net.outbound import private_hosts

Env = Mapping[str, str]


def int_var(env: Env, var: str, default: int, minimum: int = 0) -> int:
    raw = env.get(var)
    if raw in (None, ""):
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} must be a whole number") from None
    if v < minimum:
        raise ConfigError(f"{var}={raw!r} must be at least {minimum}")
    return v


def seconds_var(env: Env, var: str, default: float) -> float:
    """A positive number (of seconds, or of hours for ADMIN_SESSION_HOURS)."""
    raw = env.get(var)
    if raw in (None, ""):
        return default
    try:
        v = float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} must be a number of seconds") from None
    if v <= 0:
        raise ConfigError(f"{var}={raw!r} must be positive")
    return v


def list_var(raw: str | None) -> tuple[str, ...]:
    """A comma list, blanks dropped."""
    return tuple(x.strip() for x in (raw or "").split(",") if x.strip())


def networks_var(
    env: Env, var: str, default: tuple[IPv4Network | IPv6Network, ...]
) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return tuple(ip_network(x, strict=False) for x in list_var(env.get(var))) or default
    except ValueError:
        raise ConfigError(f"{var}={env.get(var)!r} must be a comma list of IP addresses or CIDRs") from None


def bool_var(env: Env, var: str, default: bool) -> bool:
    raw = env.get(var, "").strip().lower()
    if raw == "":
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{var}={raw!r} must be true or false")


def private_hosts_var(env: Env, var: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Private destinations a user-chosen URL may reach: none, any (true), or the hosts listed."""
    raw = env.get(var, "")
    if not raw.strip():
        return default
    try:
        return private_hosts(raw)
    except ValueError as e:
        raise ConfigError(f"{var}: {e}; or set it to true (any host) or false") from None


def http_url(value: str, var: str) -> str:
    u = urlparse(value)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ConfigError(f"{var}={value!r} is not an http(s) URL; set it like https://mint.example.com")
    return value.rstrip("/")


def port_var(env: Env, var: str, default: int) -> int:
    port = int_var(env, var, default, minimum=1)
    if port > 65535:
        raise ConfigError(f"{var}={port} must be at most 65535")
    return port


def btc_usd_price(env: Env, default: Decimal | None) -> Decimal | None:
    raw = env.get("BTC_USD_PRICE")
    if not raw:
        return default
    try:
        btc = Decimal(raw)
    except InvalidOperation:
        raise ConfigError(f"BTC_USD_PRICE={raw!r} must be a number (USD per BTC)") from None
    if not btc.is_finite() or btc <= 0:
        raise ConfigError("BTC_USD_PRICE must be a positive number of USD per BTC")
    return btc


def log_level(env: Env, default: str) -> str:
    level = env.get("LOG_LEVEL", default).upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"LOG_LEVEL={level!r} must be one of DEBUG, INFO, WARNING, ERROR")
    return level


def log_format(env: Env, default: str) -> str:
    fmt = env.get("LOG_FORMAT", default).strip().lower() or default
    if fmt not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT={fmt!r} must be text or json")
    return fmt


def webhook_retry(env: Env, base_default: float, cap_default: float) -> tuple[float, float]:
    base = seconds_var(env, "WEBHOOK_RETRY_BASE_SECONDS", base_default)
    cap = seconds_var(env, "WEBHOOK_RETRY_MAX_SECONDS", cap_default)
    if cap < base:
        raise ConfigError("WEBHOOK_RETRY_MAX_SECONDS must be at least WEBHOOK_RETRY_BASE_SECONDS")
    return base, cap


def reservation_ttl(env: Env, default: int) -> int:
    """A lease length, not a request length: a running request renews its reservation every third of
    it, however long it streams; a crashed process's reservations come back within this (plus one
    sweep, at most every half of it). Whole seconds, so the renewal period is at least 1/3 s."""
    ttl = int_var(env, "RESERVATION_TTL_SECONDS", default)
    if ttl < 1:
        raise ConfigError(
            f"RESERVATION_TTL_SECONDS={ttl} must be at least 1: it is the lease of a running request's "
            f"reservation, renewed every third of it ({default} is a good value; streams may run longer)"
        )
    return ttl


def missing_key_status(env: Env, default: int) -> int:
    status = int_var(env, "MISSING_KEY_STATUS", default)
    if status not in (401, 402):
        raise ConfigError(f"MISSING_KEY_STATUS={status} must be 401 (OpenAI SDKs) or 402 (NUT-24 wallets)")
    return status


def nsec(env: Env, default: str) -> str:
    """NSEC, checked here so a typo stops start-up (the key itself is never repeated in a message)."""
    raw = env.get("NSEC", "").strip()
    if not raw:
        return default
    try:
        parse_secret_key(raw)
    except NostrKeyError as e:
        raise ConfigError(f"NSEC {e}; or leave it empty (a key derived from the node secret)") from None
    return raw


def relays(env: Env, default: tuple[str, ...]) -> tuple[str, ...]:
    """RELAYS: ws:// or wss:// URLs, in order, each once."""
    found: list[str] = []
    for url in list_var(env.get("RELAYS")):
        u = urlparse(url)
        try:
            _ = u.port  # raises on a bad port
        except ValueError:
            raise ConfigError(f"RELAYS: {url!r} has a bad port") from None
        if u.username or u.password:
            raise ConfigError("RELAYS: a relay URL must not hold credentials (user:password@)")
        if u.scheme not in ("ws", "wss") or not u.hostname:
            raise ConfigError(f"RELAYS: {url!r} is not a relay URL; list them like wss://relay.example.com")
        if url not in found:
            found.append(url)
    return tuple(found) or default


def provider_id(env: Env, default: str) -> str:
    value = env.get("PROVIDER_ID", "").strip() or default
    if len(value) > 128 or not value.isprintable():
        raise ConfigError(f"PROVIDER_ID={value[:40]!r} must be at most 128 printable characters")
    return value


def metrics_port(env: Env, default: int | None) -> int | None:
    """METRICS_PORT turns on the separate /metrics address; METRICS_HOST alone is a mistake."""
    if env.get("METRICS_PORT", "").strip() == "":
        if env.get("METRICS_HOST", "").strip():
            raise ConfigError("METRICS_HOST is set but METRICS_PORT is not; set both (e.g. 9464)")
        return default
    return port_var(env, "METRICS_PORT", 0)  # set (not empty), so never this 0
