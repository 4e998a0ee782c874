"""``load_settings``: the environment (and an optional ``.env`` file) read into ``Settings``.

Every fallback is the field's default (``DEFAULTS``), never a literal written here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from routstr.config import env as read
from routstr.config.files import load_price_book, load_providers
from routstr.config.settings import DEFAULTS, WORKER_ENV, Settings, normalise_database_url
from routstr.core.errors import ConfigError
from routstr.core.pricing import PriceBook
from routstr.rates.sources import sources_from_env
from routstr.upstream.spec import ProviderSpec


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """Read settings; the process environment wins over ``.env``."""
    env: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)
    d = DEFAULTS

    upstream = env.get("UPSTREAM_BASE_URL", "").strip()
    providers, aliases = load_providers(env["PROVIDERS_FILE"], env) if env.get("PROVIDERS_FILE") else ((), {})
    if upstream:
        shortcut = ProviderSpec(
            "upstream", read.http_url(upstream, "UPSTREAM_BASE_URL"), env.get("UPSTREAM_API_KEY", "")
        )
        providers = (shortcut, *providers)
    mints = tuple(read.http_url(m, "CASHU_MINTS") for m in read.list_var(env.get("CASHU_MINTS")))
    if not mints:
        raise ConfigError(
            "CASHU_MINTS is not set; list the mints you accept, e.g. https://mint.minibits.cash/Bitcoin"
        )

    btc = read.btc_usd_price(env, d.btc_usd_price)
    pricing_file = env.get("PRICING_FILE", d.pricing_file)
    prices = load_price_book(pricing_file) if pricing_file else PriceBook()
    raw_sources = env.get("BTC_USD_SOURCES")
    try:
        sources = sources_from_env(raw_sources) if raw_sources and raw_sources.strip() else d.btc_usd_sources
    except ValueError as e:
        raise ConfigError(f"BTC_USD_SOURCES: {e}") from None
    refresh_s = read.int_var(env, "BTC_USD_REFRESH_SECONDS", d.btc_usd_refresh_s, minimum=1)
    max_age_s = read.int_var(env, "BTC_USD_MAX_AGE_SECONDS", d.btc_usd_max_age_s, minimum=2)
    if max_age_s <= refresh_s:
        raise ConfigError("BTC_USD_MAX_AGE_SECONDS must be longer than BTC_USD_REFRESH_SECONDS")

    port = read.port_var(env, "PORT", d.port)
    level = read.log_level(env, d.log_level)
    retry_base_s, retry_max_s = read.webhook_retry(env, d.webhook_retry_base_s, d.webhook_retry_max_s)
    whole, seconds, flag = read.int_var, read.seconds_var, read.bool_var
    return Settings(
        providers=providers,
        aliases=aliases,
        cashu_mints=mints,
        database_url=normalise_database_url(env.get("DATABASE_URL") or d.database_url),
        host=env.get("HOST", d.host),
        port=port,
        admin_password=env.get("ADMIN_PASSWORD", d.admin_password),
        admin_session_hours=seconds(env, "ADMIN_SESSION_HOURS", d.admin_session_hours),
        name=env.get("NAME", d.name),
        description=env.get("DESCRIPTION", d.description),
        http_url=env.get("HTTP_URL", d.http_url),
        onion_url=env.get("ONION_URL", d.onion_url),
        nsec=read.nsec(env, d.nsec),
        relays=read.relays(env, d.relays),
        provider_id=read.provider_id(env, d.provider_id),
        cors_origins=read.list_var(env.get("CORS_ORIGINS")) or d.cors_origins,
        btc_usd_price=btc,
        btc_usd_sources=sources,
        btc_usd_refresh_s=refresh_s,
        btc_usd_max_age_s=max_age_s,
        pricing_file=pricing_file,
        prices=prices,
        secret_key=env.get("SECRET_KEY", d.secret_key),
        secret_key_file=env.get("SECRET_KEY_FILE", d.secret_key_file).strip(),
        max_body_bytes=whole(env, "MAX_BODY_BYTES", d.max_body_bytes, minimum=1024),
        default_max_output_tokens=whole(env, "DEFAULT_MAX_OUTPUT_TOKENS", d.default_max_output_tokens, 1),
        min_fitted_max_tokens=whole(env, "MIN_FITTED_MAX_TOKENS", d.min_fitted_max_tokens, minimum=1),
        image_input_tokens=whole(env, "IMAGE_INPUT_TOKENS", d.image_input_tokens, minimum=1),
        mint_health_s=seconds(env, "MINT_HEALTH_SECONDS", d.mint_health_s),
        reservation_ttl_s=read.reservation_ttl(env, d.reservation_ttl_s),
        provider_failures_to_open=whole(env, "PROVIDER_FAILURES_TO_OPEN", d.provider_failures_to_open, 1),
        provider_cooldown_s=whole(env, "PROVIDER_COOLDOWN_SECONDS", d.provider_cooldown_s, minimum=1),
        catalogue_sync_s=seconds(env, "CATALOGUE_SYNC_SECONDS", d.catalogue_sync_s),
        upstream_connect_timeout_s=seconds(env, "UPSTREAM_CONNECT_TIMEOUT", d.upstream_connect_timeout_s),
        upstream_read_timeout_s=seconds(env, "UPSTREAM_READ_TIMEOUT", d.upstream_read_timeout_s),
        upstream_total_timeout_s=seconds(env, "UPSTREAM_TOTAL_TIMEOUT", d.upstream_total_timeout_s),
        mint_timeout_s=seconds(env, "MINT_TIMEOUT", d.mint_timeout_s),
        missing_key_status=read.missing_key_status(env, d.missing_key_status),
        mint_max_exposure_sats=whole(env, "MINT_MAX_EXPOSURE_SATS", d.mint_max_exposure_sats),
        foreign_mint_max_sats=whole(env, "FOREIGN_MINT_MAX_SATS", d.foreign_mint_max_sats),
        foreign_mint_daily_sats=whole(env, "FOREIGN_MINT_DAILY_SATS", d.foreign_mint_daily_sats),
        foreign_mint_allow_http=flag(env, "FOREIGN_MINT_ALLOW_HTTP", d.foreign_mint_allow_http),
        foreign_mint_allow_private=read.private_hosts_var(
            env, "FOREIGN_MINT_ALLOW_PRIVATE", d.foreign_mint_allow_private
        ),
        invoice_watch_s=seconds(env, "INVOICE_WATCH_SECONDS", d.invoice_watch_s),
        webhook_check_s=seconds(env, "WEBHOOK_CHECK_SECONDS", d.webhook_check_s),
        webhook_deliver_s=seconds(env, "WEBHOOK_DELIVER_SECONDS", d.webhook_deliver_s),
        webhook_timeout_s=seconds(env, "WEBHOOK_TIMEOUT_SECONDS", d.webhook_timeout_s),
        webhook_retry_base_s=retry_base_s,
        webhook_retry_max_s=retry_max_s,
        webhook_max_attempts=whole(env, "WEBHOOK_MAX_ATTEMPTS", d.webhook_max_attempts, minimum=1),
        webhook_max_per_key=whole(env, "WEBHOOK_MAX_PER_KEY", d.webhook_max_per_key, minimum=1),
        child_key_cost_msats=whole(env, "CHILD_KEY_COST_MSATS", d.child_key_cost_msats),
        webhook_allow_private=flag(env, "WEBHOOK_ALLOW_PRIVATE", d.webhook_allow_private),
        webhook_allow_http=flag(env, "WEBHOOK_ALLOW_HTTP", d.webhook_allow_http),
        lnurl_allow_http=flag(env, "LNURL_ALLOW_HTTP", d.lnurl_allow_http),
        lnurl_allow_private=read.private_hosts_var(env, "LNURL_ALLOW_PRIVATE", d.lnurl_allow_private),
        rate_limit_requests_per_minute=whole(
            env, "RATE_LIMIT_REQUESTS_PER_MINUTE", d.rate_limit_requests_per_minute
        ),
        rate_limit_tokens_per_hour=whole(env, "RATE_LIMIT_TOKENS_PER_HOUR", d.rate_limit_tokens_per_hour),
        rate_limit_concurrent=whole(env, "RATE_LIMIT_CONCURRENT", d.rate_limit_concurrent),
        xcashu_limit_per_address=whole(env, "XCASHU_LIMIT_PER_ADDRESS", d.xcashu_limit_per_address),
        xcashu_limit_total=whole(env, "XCASHU_LIMIT_TOTAL", d.xcashu_limit_total),
        redeem_limit_per_address=whole(env, "REDEEM_LIMIT_PER_ADDRESS", d.redeem_limit_per_address),
        db_pool_size=whole(env, "DB_POOL_SIZE", d.db_pool_size, minimum=1),
        redis_url=env.get("REDIS_URL", d.redis_url).strip(),
        redis_prefix=env.get("REDIS_PREFIX", d.redis_prefix).strip() or d.redis_prefix,
        receive_ln_address=env.get("RECEIVE_LN_ADDRESS", d.receive_ln_address).strip(),
        receive_ln_threshold_sats=whole(env, "RECEIVE_LN_THRESHOLD_SATS", d.receive_ln_threshold_sats, 1),
        log_level=level,
        log_format=read.log_format(env, d.log_format),
        log_client_ips=flag(env, "LOG_CLIENT_IPS", d.log_client_ips),
        trusted_proxies=read.networks_var(env, "TRUSTED_PROXIES", d.trusted_proxies),
        metrics_host=env.get("METRICS_HOST", "").strip() or d.metrics_host,
        metrics_port=read.metrics_port(env, d.metrics_port),
        worker=flag(env, WORKER_ENV, d.worker),
    )
