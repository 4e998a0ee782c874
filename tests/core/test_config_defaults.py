"""Each default is written once: ``load_settings`` falls back on ``Settings``' own defaults, components
built without a value get the same ones, and the worker flag comes from the environment through
``Settings`` (not read again by the modules that use it)."""

from __future__ import annotations

import dataclasses
import inspect
from decimal import Decimal
from ipaddress import ip_network
from typing import Any

import pytest

from routstr.config import DEFAULTS, WORKER_ENV, ConfigError, Settings, load, load_settings

MINTS = {"CASHU_MINTS": "https://mint.a"}
# set by the environment or a file only: no default of theirs is read by load_settings
FROM_ENV_ONLY = {"providers", "aliases", "cashu_mints", "pricing_file", "prices"}


def _shifted() -> Settings:
    """Settings whose every default differs from the real ones (and still passes load_settings' checks)."""
    new: dict[str, Any] = {}
    special: dict[str, Any] = {
        "database_url": "sqlite+aiosqlite:///elsewhere.sqlite3",
        "log_level": "DEBUG",
        "log_format": "json",
        "provider_id": "another",
        "missing_key_status": 402,
        "metrics_port": 9464,
        "btc_usd_price": Decimal(50_000),
        "btc_usd_sources": DEFAULTS.btc_usd_sources[:1],
        "trusted_proxies": (ip_network("10.0.0.0/8"),),
        "relays": ("wss://relay.example",),
        "cors_origins": ("https://a.example",),
        "foreign_mint_allow_private": ("mint.lan",),
        "lnurl_allow_private": ("lnbits.lan",),
    }
    for f in dataclasses.fields(Settings):
        if f.name in FROM_ENV_ONLY:
            continue
        value = getattr(DEFAULTS, f.name)
        if f.name in special:
            new[f.name] = special[f.name]
        elif isinstance(value, bool):
            new[f.name] = not value
        elif isinstance(value, int | float):
            new[f.name] = value + 1
        elif isinstance(value, str):
            new[f.name] = value + "-other"
        else:  # a new field of another type: give it a value in `special`
            raise AssertionError(f"no shifted default for Settings.{f.name}")
    return dataclasses.replace(DEFAULTS, **new)


def test_unset_variables_take_the_field_defaults() -> None:
    s = load_settings(MINTS, env_file=None)
    expected = Settings(providers=(), cashu_mints=("https://mint.a",))
    for f in dataclasses.fields(Settings):
        assert getattr(s, f.name) == getattr(expected, f.name), f.name


def test_load_settings_writes_no_default_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Change every default: whatever load_settings falls back on must change with it (a literal
    repeated in the loader would keep the old value)."""
    shifted = _shifted()
    monkeypatch.setattr(load, "DEFAULTS", shifted)
    s = load_settings(MINTS, env_file=None)
    for f in dataclasses.fields(Settings):
        if f.name not in FROM_ENV_ONLY:
            assert getattr(s, f.name) == getattr(shifted, f.name) != getattr(DEFAULTS, f.name), f.name


def test_database_url_default_is_the_documented_one() -> None:
    assert DEFAULTS.database_url == "sqlite+aiosqlite:///routstr.sqlite3"  # README: sqlite:///routstr.sqlite3
    assert load_settings({**MINTS, "DATABASE_URL": "sqlite:///routstr.sqlite3"}, None) == load_settings(
        MINTS, None
    )


def test_components_built_without_a_value_use_the_settings_defaults() -> None:
    from routstr.limits import DEFAULT_LIMITS, Limits
    from routstr.storage.db import Database
    from routstr.upstream.breaker import Breaker
    from routstr.upstream.catalogue import Catalogue
    from routstr.webhooks.delivery import DeliveryPolicy, policy_from

    d = DEFAULTS
    assert DEFAULT_LIMITS == Limits(
        d.rate_limit_requests_per_minute, d.rate_limit_tokens_per_hour, d.rate_limit_concurrent
    )
    b = Breaker()
    assert (b.threshold, b.cooldown_s) == (d.provider_failures_to_open, d.provider_cooldown_s)
    c = Catalogue(d.prices, lambda: Decimal(1), d.default_max_output_tokens)
    assert (c.image_input_tokens, c.min_fitted_output) == (d.image_input_tokens, d.min_fitted_max_tokens)
    assert DeliveryPolicy() == policy_from(d)
    assert inspect.signature(Database).parameters["pool_size"].default == d.db_pool_size


@pytest.mark.parametrize(
    ("raw", "worker"), [(None, False), ("", False), ("1", True), ("true", True), ("0", False)]
)
def test_the_worker_flag_is_read_from_the_environment(raw: str | None, worker: bool) -> None:
    env = MINTS if raw is None else {**MINTS, WORKER_ENV: raw}
    assert load_settings(env, env_file=None).worker is worker


def test_a_bad_worker_flag_says_so() -> None:
    with pytest.raises(ConfigError, match=f"{WORKER_ENV}='maybe' must be true or false"):
        load_settings({**MINTS, WORKER_ENV: "maybe"}, env_file=None)


def test_jobs_follow_the_settings_not_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from routstr.jobs import recovers_at_once

    monkeypatch.setenv(WORKER_ENV, "1")  # no longer looked at: the settings say who is a worker
    single = load_settings(MINTS, env_file=None)
    assert recovers_at_once(single)
    assert not recovers_at_once(dataclasses.replace(single, worker=True))
    pg = dataclasses.replace(single, database_url="postgresql+asyncpg://u@h/db")
    assert not recovers_at_once(pg)
