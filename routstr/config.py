"""Configuration from the environment and an optional ``.env`` file.

Names follow Routstr Core where they exist, so an operator can switch nodes keeping their ``.env``.
Anything wrong stops start-up with one line saying what to fix (``ConfigError``).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dotenv import dotenv_values

from routstr.core.pricing import PriceBook
from routstr.discovery.keys import NostrKeyError, parse_secret_key
from routstr.net.outbound import private_hosts
from routstr.rates.sources import DEFAULT_SOURCES, Source, sources_from_env
from routstr.upstream.aliases import alias_problem
from routstr.upstream.spec import ProviderSpec


class ConfigError(Exception):
    """A configuration mistake, worded as what the operator should change."""


# Without a provider in the environment or a file, the node starts only on providers stored in its
# database (routstr providers add, or the admin API); `routstr serve` checks before it starts.
NO_PROVIDER = (
    "UPSTREAM_BASE_URL is not set; set it to your provider, e.g. https://api.openai.com/v1 "
    "(or set PROVIDERS_FILE, or store one with routstr providers add)"
)


@dataclass(frozen=True)
class Settings:
    providers: tuple[ProviderSpec, ...]
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # public id -> provider model ids
    cashu_mints: tuple[str, ...] = ()
    database_url: str = "sqlite+aiosqlite:///routstr.sqlite3"
    host: str = "127.0.0.1"
    port: int = 8000
    admin_password: str = ""  # the dashboard password on first start (then its stored hash counts)
    admin_session_hours: float = 12.0  # a dashboard session ends this long after its last use
    name: str = "routstr node"
    description: str = "Pay-per-request LLM access with Cashu eCash"
    http_url: str = ""
    onion_url: str = ""
    nsec: str = ""  # the node's Nostr key (nsec1… or hex); empty: derived from the node secret
    relays: tuple[str, ...] = ()  # ws(s):// relays the node announces itself on; empty: none
    provider_id: str = "routstr"  # the announcement's d tag (routstr.discovery)
    cors_origins: tuple[str, ...] = ("*",)
    btc_usd_price: Decimal | None = None  # pins the rate; otherwise it is fetched live
    btc_usd_sources: tuple[Source, ...] = DEFAULT_SOURCES
    btc_usd_refresh_s: int = 60
    btc_usd_max_age_s: int = 600  # older than this, USD-priced models answer 503
    pricing_file: str = ""
    prices: PriceBook = field(default_factory=PriceBook)
    secret_key: str = ""
    secret_key_file: str = ""  # empty: beside the SQLite file, else ./routstr.secret (storage/node_secret)
    max_body_bytes: int = 10 * 1024 * 1024
    default_max_output_tokens: int = 4096
    # the least a client's own output limit is lowered to when its balance cannot reserve it
    min_fitted_max_tokens: int = 1024
    image_input_tokens: int = 4096
    # the lease of a running request's reservation: renewed every third of it while the request runs
    # (routstr.billing.leases), so only a dead request's (crash, kill) expires and is swept
    reservation_ttl_s: int = 120
    provider_failures_to_open: int = 3  # consecutive retryable failures that put a provider on cooldown
    provider_cooldown_s: int = 30
    catalogue_sync_s: float = 10.0  # how soon every process applies a provider or model change
    upstream_connect_timeout_s: float = 10.0
    upstream_read_timeout_s: float = 300.0  # the longest silence between two chunks
    upstream_total_timeout_s: float = 1800.0  # the longest a whole answer (a stream included) may take
    mint_timeout_s: float = 20.0
    mint_health_s: float = 30.0  # how often every mint is asked for its keysets (a down one fails fast)
    mint_max_exposure_sats: int = 0  # the most eCash of one mint the node takes in (0: no limit)
    foreign_mint_max_sats: int = 0  # > 0: convert tokens of other mints up to this (melt there, mint here)
    foreign_mint_daily_sats: int = 0  # all conversions in 24 h (0: ten tokens' worth)
    foreign_mint_allow_http: bool = False
    foreign_mint_allow_private: tuple[str, ...] = ()  # hosts (or "*") a token's mint may be private at
    lnurl_allow_http: bool = False  # Lightning addresses / LNURLs on plain http (local tests only)
    lnurl_allow_private: tuple[str, ...] = ()  # hosts (or "*") a Lightning address may be private at
    invoice_watch_s: float = 5.0
    webhook_check_s: float = 5.0  # how often balance.low (and expired empty keys) are looked for
    webhook_deliver_s: float = 2.0  # how often due webhook deliveries are sent
    webhook_timeout_s: float = 10.0  # per delivery attempt
    webhook_retry_base_s: float = 10.0  # first wait after a failed attempt; doubles each time
    webhook_retry_max_s: float = 3600.0  # the longest wait between two attempts
    webhook_max_attempts: int = 12  # then the delivery is given up (recorded)
    webhook_max_per_key: int = 10
    child_key_cost_msats: int = 0  # charged to the parent per child key made (operator's earnings)
    webhook_allow_private: bool = False  # loopback/private/link-local receivers (local tests only)
    webhook_allow_http: bool = False  # plain-http receivers (local tests only)
    rate_limit_requests_per_minute: int = 1000  # per key; 0: no limit
    rate_limit_tokens_per_hour: int = 1_000_000
    rate_limit_concurrent: int = 10
    # X-Cashu requests a minute, counted before the token is redeemed (each token is a fresh key, so
    # per-key limits never bind): per client address, and for the whole node (fleet-wide with Redis)
    xcashu_limit_per_address: int = 120
    xcashu_limit_total: int = 3000
    # refused token redemptions a minute per client address (routstr.wallet.redeem_gate); 0: off
    redeem_limit_per_address: int = 60
    db_pool_size: int = 10  # PostgreSQL connections per process (3x that at most: bursts, hot path)
    redis_url: str = ""  # set: rate-limit counters shared by a fleet through Redis
    redis_prefix: str = "routstr:rl"  # namespace of those counters (one per fleet)
    receive_ln_address: str = ""  # earnings paid here automatically once they reach the threshold
    receive_ln_threshold_sats: int = 10_000  # how often paid Lightning invoices are settled without a poll
    missing_key_status: int = 401  # 402: answer NUT-24 wallets with Payment Required instead
    log_level: str = "INFO"
    log_format: str = "text"  # or json: one object per line
    log_client_ips: bool = False  # add the client's address to a request's log lines
    # reverse proxies whose X-Forwarded-For names the client (routstr.api.client_address)
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    metrics_host: str = "127.0.0.1"  # /metrics without a token here, when metrics_port is set
    metrics_port: int | None = None

    @property
    def primary_mint(self) -> str:
        return self.cashu_mints[0]


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
                base_url=_clean_url(str(entry["base_url"]), f"{where}: base_url"),
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


def _clean_url(value: str, var: str) -> str:
    u = urlparse(value)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise ConfigError(f"{var}={value!r} is not an http(s) URL; set it like https://mint.example.com")
    return value.rstrip("/")


def normalise_database_url(url: str) -> str:
    """Accept plain ``sqlite:///`` and ``postgres(ql)://`` URLs and pick the async driver for them."""
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    raise ConfigError(
        f"DATABASE_URL={url!r} is not supported; use sqlite:///path.sqlite3 or postgresql://user@host/db"
    )


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


def _int(env: Mapping[str, str], var: str, default: int, minimum: int = 0) -> int:
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


def _float(env: Mapping[str, str], var: str, default: float) -> float:
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


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (raw or "").split(",") if x.strip())


def _networks(env: Mapping[str, str], var: str) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return tuple(ip_network(x, strict=False) for x in _list(env.get(var)))
    except ValueError:
        raise ConfigError(f"{var}={env.get(var)!r} must be a comma list of IP addresses or CIDRs") from None


def _bool(env: Mapping[str, str], var: str) -> bool:
    raw = env.get(var, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{var}={raw!r} must be true or false")


def _private_hosts(env: Mapping[str, str], var: str) -> tuple[str, ...]:
    """Private destinations a user-chosen URL may reach: none, any (true), or the hosts listed."""
    try:
        return private_hosts(env.get(var, ""))
    except ValueError as e:
        raise ConfigError(f"{var}: {e}; or set it to true (any host) or false") from None


def _webhook_retry(env: Mapping[str, str]) -> tuple[float, float]:
    base = _float(env, "WEBHOOK_RETRY_BASE_SECONDS", 10.0)
    cap = _float(env, "WEBHOOK_RETRY_MAX_SECONDS", 3600.0)
    if cap < base:
        raise ConfigError("WEBHOOK_RETRY_MAX_SECONDS must be at least WEBHOOK_RETRY_BASE_SECONDS")
    return base, cap


def _reservation_ttl(env: Mapping[str, str]) -> int:
    """A lease length, not a request length: a running request renews its reservation every third of
    it, however long it streams; a crashed process's reservations come back within this (plus one
    sweep, at most every half of it). Whole seconds, so the renewal period is at least 1/3 s."""
    ttl = _int(env, "RESERVATION_TTL_SECONDS", 120)
    if ttl < 1:
        raise ConfigError(
            f"RESERVATION_TTL_SECONDS={ttl} must be at least 1: it is the lease of a running request's "
            "reservation, renewed every third of it (120 is a good value; streams may run longer)"
        )
    return ttl


def _missing_key_status(env: Mapping[str, str]) -> int:
    status = _int(env, "MISSING_KEY_STATUS", 401)
    if status not in (401, 402):
        raise ConfigError(f"MISSING_KEY_STATUS={status} must be 401 (OpenAI SDKs) or 402 (NUT-24 wallets)")
    return status


def _log_format(env: Mapping[str, str]) -> str:
    fmt = env.get("LOG_FORMAT", "text").strip().lower() or "text"
    if fmt not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT={fmt!r} must be text or json")
    return fmt


def _nsec(env: Mapping[str, str]) -> str:
    """NSEC, checked here so a typo stops start-up (the key itself is never repeated in a message)."""
    raw = env.get("NSEC", "").strip()
    if raw:
        try:
            parse_secret_key(raw)
        except NostrKeyError as e:
            raise ConfigError(f"NSEC {e}; or leave it empty (a key derived from the node secret)") from None
    return raw


def _relays(env: Mapping[str, str]) -> tuple[str, ...]:
    """RELAYS: ws:// or wss:// URLs, in order, each once."""
    relays: list[str] = []
    for url in _list(env.get("RELAYS")):
        u = urlparse(url)
        try:
            _ = u.port  # raises on a bad port
        except ValueError:
            raise ConfigError(f"RELAYS: {url!r} has a bad port") from None
        if u.username or u.password:
            raise ConfigError("RELAYS: a relay URL must not hold credentials (user:password@)")
        if u.scheme not in ("ws", "wss") or not u.hostname:
            raise ConfigError(f"RELAYS: {url!r} is not a relay URL; list them like wss://relay.example.com")
        if url not in relays:
            relays.append(url)
    return tuple(relays)


def _provider_id(env: Mapping[str, str]) -> str:
    value = env.get("PROVIDER_ID", "").strip() or "routstr"
    if len(value) > 128 or not value.isprintable():
        raise ConfigError(f"PROVIDER_ID={value[:40]!r} must be at most 128 printable characters")
    return value


def _metrics_port(env: Mapping[str, str]) -> int | None:
    """METRICS_PORT turns on the separate /metrics address; METRICS_HOST alone is a mistake."""
    if env.get("METRICS_PORT", "").strip() == "":
        if env.get("METRICS_HOST", "").strip():
            raise ConfigError("METRICS_HOST is set but METRICS_PORT is not; set both (e.g. 9464)")
        return None
    port = _int(env, "METRICS_PORT", 0, minimum=1)
    if port > 65535:
        raise ConfigError(f"METRICS_PORT={port} must be at most 65535")
    return port


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """Read settings; the process environment wins over ``.env``."""
    env: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    upstream = env.get("UPSTREAM_BASE_URL", "").strip()
    providers, aliases = load_providers(env["PROVIDERS_FILE"], env) if env.get("PROVIDERS_FILE") else ((), {})
    if upstream:
        shortcut = ProviderSpec(
            "upstream", _clean_url(upstream, "UPSTREAM_BASE_URL"), env.get("UPSTREAM_API_KEY", "")
        )
        providers = (shortcut, *providers)
    mints = tuple(_clean_url(m, "CASHU_MINTS") for m in _list(env.get("CASHU_MINTS")))
    if not mints:
        raise ConfigError(
            "CASHU_MINTS is not set; list the mints you accept, e.g. https://mint.minibits.cash/Bitcoin"
        )

    btc: Decimal | None = None
    if env.get("BTC_USD_PRICE"):
        try:
            btc = Decimal(env["BTC_USD_PRICE"])
        except InvalidOperation:
            raise ConfigError(
                f"BTC_USD_PRICE={env['BTC_USD_PRICE']!r} must be a number (USD per BTC)"
            ) from None
        if not btc.is_finite() or btc <= 0:
            raise ConfigError("BTC_USD_PRICE must be a positive number of USD per BTC")

    pricing_file = env.get("PRICING_FILE", "")
    prices = load_price_book(pricing_file) if pricing_file else PriceBook()
    try:
        sources = sources_from_env(env.get("BTC_USD_SOURCES"))
    except ValueError as e:
        raise ConfigError(f"BTC_USD_SOURCES: {e}") from None
    refresh_s = _int(env, "BTC_USD_REFRESH_SECONDS", 60, minimum=1)
    max_age_s = _int(env, "BTC_USD_MAX_AGE_SECONDS", 600, minimum=2)
    if max_age_s <= refresh_s:
        raise ConfigError("BTC_USD_MAX_AGE_SECONDS must be longer than BTC_USD_REFRESH_SECONDS")

    port = _int(env, "PORT", 8000, minimum=1)
    if port > 65535:
        raise ConfigError(f"PORT={port} must be at most 65535")
    level = env.get("LOG_LEVEL", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"LOG_LEVEL={level!r} must be one of DEBUG, INFO, WARNING, ERROR")

    retry_base_s, retry_max_s = _webhook_retry(env)
    return Settings(
        providers=providers,
        aliases=aliases,
        cashu_mints=mints,
        database_url=normalise_database_url(env.get("DATABASE_URL") or "sqlite:///routstr.sqlite3"),
        host=env.get("HOST", "127.0.0.1"),
        port=port,
        admin_password=env.get("ADMIN_PASSWORD", ""),
        admin_session_hours=_float(env, "ADMIN_SESSION_HOURS", 12.0),
        name=env.get("NAME", "routstr node"),
        description=env.get("DESCRIPTION", "Pay-per-request LLM access with Cashu eCash"),
        http_url=env.get("HTTP_URL", ""),
        onion_url=env.get("ONION_URL", ""),
        nsec=_nsec(env),
        relays=_relays(env),
        provider_id=_provider_id(env),
        cors_origins=_list(env.get("CORS_ORIGINS")) or ("*",),
        btc_usd_price=btc,
        btc_usd_sources=sources,
        btc_usd_refresh_s=refresh_s,
        btc_usd_max_age_s=max_age_s,
        pricing_file=pricing_file,
        prices=prices,
        secret_key=env.get("SECRET_KEY", ""),
        secret_key_file=env.get("SECRET_KEY_FILE", "").strip(),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1024),
        default_max_output_tokens=_int(env, "DEFAULT_MAX_OUTPUT_TOKENS", 4096, minimum=1),
        min_fitted_max_tokens=_int(env, "MIN_FITTED_MAX_TOKENS", 1024, minimum=1),
        image_input_tokens=_int(env, "IMAGE_INPUT_TOKENS", 4096, minimum=1),
        mint_health_s=_float(env, "MINT_HEALTH_SECONDS", 30.0),
        reservation_ttl_s=_reservation_ttl(env),
        provider_failures_to_open=_int(env, "PROVIDER_FAILURES_TO_OPEN", 3, minimum=1),
        provider_cooldown_s=_int(env, "PROVIDER_COOLDOWN_SECONDS", 30, minimum=1),
        catalogue_sync_s=_float(env, "CATALOGUE_SYNC_SECONDS", 10.0),
        upstream_connect_timeout_s=_float(env, "UPSTREAM_CONNECT_TIMEOUT", 10.0),
        upstream_read_timeout_s=_float(env, "UPSTREAM_READ_TIMEOUT", 300.0),
        upstream_total_timeout_s=_float(env, "UPSTREAM_TOTAL_TIMEOUT", 1800.0),
        mint_timeout_s=_float(env, "MINT_TIMEOUT", 20.0),
        missing_key_status=_missing_key_status(env),
        mint_max_exposure_sats=_int(env, "MINT_MAX_EXPOSURE_SATS", 0),
        foreign_mint_max_sats=_int(env, "FOREIGN_MINT_MAX_SATS", 0),
        foreign_mint_daily_sats=_int(env, "FOREIGN_MINT_DAILY_SATS", 0),
        foreign_mint_allow_http=_bool(env, "FOREIGN_MINT_ALLOW_HTTP"),
        foreign_mint_allow_private=_private_hosts(env, "FOREIGN_MINT_ALLOW_PRIVATE"),
        invoice_watch_s=_float(env, "INVOICE_WATCH_SECONDS", 5.0),
        webhook_check_s=_float(env, "WEBHOOK_CHECK_SECONDS", 5.0),
        webhook_deliver_s=_float(env, "WEBHOOK_DELIVER_SECONDS", 2.0),
        webhook_timeout_s=_float(env, "WEBHOOK_TIMEOUT_SECONDS", 10.0),
        webhook_retry_base_s=retry_base_s,
        webhook_retry_max_s=retry_max_s,
        webhook_max_attempts=_int(env, "WEBHOOK_MAX_ATTEMPTS", 12, minimum=1),
        webhook_max_per_key=_int(env, "WEBHOOK_MAX_PER_KEY", 10, minimum=1),
        child_key_cost_msats=_int(env, "CHILD_KEY_COST_MSATS", 0),
        webhook_allow_private=_bool(env, "WEBHOOK_ALLOW_PRIVATE"),
        webhook_allow_http=_bool(env, "WEBHOOK_ALLOW_HTTP"),
        lnurl_allow_http=_bool(env, "LNURL_ALLOW_HTTP"),
        lnurl_allow_private=_private_hosts(env, "LNURL_ALLOW_PRIVATE"),
        rate_limit_requests_per_minute=_int(env, "RATE_LIMIT_REQUESTS_PER_MINUTE", 1000),
        rate_limit_tokens_per_hour=_int(env, "RATE_LIMIT_TOKENS_PER_HOUR", 1_000_000),
        rate_limit_concurrent=_int(env, "RATE_LIMIT_CONCURRENT", 10),
        xcashu_limit_per_address=_int(env, "XCASHU_LIMIT_PER_ADDRESS", 120),
        xcashu_limit_total=_int(env, "XCASHU_LIMIT_TOTAL", 3000),
        redeem_limit_per_address=_int(env, "REDEEM_LIMIT_PER_ADDRESS", 60),
        db_pool_size=_int(env, "DB_POOL_SIZE", 10, minimum=1),
        redis_url=env.get("REDIS_URL", "").strip(),
        redis_prefix=env.get("REDIS_PREFIX", "routstr:rl").strip() or "routstr:rl",
        receive_ln_address=env.get("RECEIVE_LN_ADDRESS", "").strip(),
        receive_ln_threshold_sats=_int(env, "RECEIVE_LN_THRESHOLD_SATS", 10_000, minimum=1),
        log_level=level,
        log_format=_log_format(env),
        log_client_ips=_bool(env, "LOG_CLIENT_IPS"),
        trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
        metrics_host=env.get("METRICS_HOST", "").strip() or "127.0.0.1",
        metrics_port=_metrics_port(env),
    )
