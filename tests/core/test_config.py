"""Configuration: Routstr Core's names, and one clear line for every mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from routstr.config import ConfigError, load_settings
from tests.conftest import _backends, fresh_database

BASE = {"UPSTREAM_BASE_URL": "https://api.example.com/v1", "CASHU_MINTS": "https://mint.a/, https://mint.b"}


def test_defaults_and_names():
    s = load_settings(BASE, env_file=None)
    assert s.cashu_mints == ("https://mint.a", "https://mint.b") and s.primary_mint == "https://mint.a"
    assert s.database_url == "sqlite+aiosqlite:///routstr.sqlite3"
    assert s.cors_origins == ("*",) and s.max_body_bytes == 10 * 1024 * 1024
    s = load_settings(
        {**BASE, "DATABASE_URL": "postgres://u@h/db", "CORS_ORIGINS": "https://a, https://b"}, None
    )
    assert s.database_url == "postgresql+asyncpg://u@h/db" and s.cors_origins == ("https://a", "https://b")


def test_dotenv_file_is_read_and_environment_wins(tmp_path: Path):
    env = tmp_path / ".env"
    env.write_text("UPSTREAM_BASE_URL=https://from-file/v1\nCASHU_MINTS=https://mint.file\nNAME=file name\n")
    s = load_settings({"NAME": "env name"}, env_file=str(env))
    assert s.providers[0].base_url == "https://from-file/v1" and s.name == "env name"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"UPSTREAM_BASE_URL": "https://u"}, "CASHU_MINTS is not set"),
        ({**BASE, "CASHU_MINTS": "ftp://m"}, "CASHU_MINTS='ftp://m' is not an http(s) URL"),
        ({**BASE, "PORT": "eighty"}, "PORT='eighty' must be a whole number"),
        ({**BASE, "BTC_USD_PRICE": "lots"}, "BTC_USD_PRICE"),
        ({**BASE, "DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({**BASE, "PRICING_FILE": "/nonexistent.toml"}, "PRICING_FILE"),
    ],
)
def test_bad_configuration_says_what_to_fix(env: dict[str, str], fragment: str):
    with pytest.raises(ConfigError, match=None) as e:
        load_settings(env, env_file=None)
    assert fragment in str(e.value)


def test_usd_prices_use_a_live_rate_unless_one_is_pinned(tmp_path: Path):
    from routstr.node import needs_live_rate

    p = tmp_path / "p.toml"
    p.write_text('[models."m"]\nprompt_usd_per_mtok = 1\n')
    live = load_settings(
        {**BASE, "PRICING_FILE": str(p), "BTC_USD_SOURCES": "kraken,bitstamp"}, env_file=None
    )
    assert needs_live_rate(live) and [s.name for s in live.btc_usd_sources] == ["kraken", "bitstamp"]
    pinned = load_settings({**BASE, "PRICING_FILE": str(p), "BTC_USD_PRICE": "90000"}, env_file=None)
    assert not needs_live_rate(pinned)
    assert not needs_live_rate(load_settings(BASE, env_file=None))  # sat prices only: never fetches
    with pytest.raises(ConfigError, match="BTC_USD_SOURCES"):
        load_settings({**BASE, "BTC_USD_SOURCES": "nosuchexchange"}, env_file=None)
    with pytest.raises(ConfigError, match="BTC_USD_MAX_AGE_SECONDS"):
        load_settings(
            {**BASE, "BTC_USD_MAX_AGE_SECONDS": "30", "BTC_USD_REFRESH_SECONDS": "60"}, env_file=None
        )


def test_serve_with_bad_config_exits_with_one_line(tmp_path: Path):
    env = {"PATH": "/usr/bin:/bin", "CASHU_MINTS": "https://m"}
    r = subprocess.run(
        [sys.executable, "-m", "routstr", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "routstr: configuration error: UPSTREAM_BASE_URL is not set; "
        "set it to your provider, e.g. https://api.openai.com/v1 "
        "(or set PROVIDERS_FILE, or store one with routstr providers add)"
    ]
    assert not list(tmp_path.iterdir())  # no database was made just to look for stored providers


@pytest.mark.parametrize("backend", _backends())
def test_database_errors_do_not_carry_parameters_into_logs(backend: str, tmp_path: Path):
    """Error messages reach logs; statement parameters hold proofs and tokens (PostgreSQL also
    repeats a duplicate value in its DETAIL line)."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from routstr.storage.db import Database

    async def go() -> str:
        async with fresh_database(backend, tmp_path) as url:
            db = Database(url)
            try:
                async with db.write() as conn:
                    await conn.execute(text("CREATE TABLE t (v TEXT UNIQUE)"))
                for _ in range(2):
                    try:
                        async with db.write() as conn:
                            await conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": "cashuBsecret-proof"})
                    except IntegrityError as e:
                        return str(e)
                return ""
            finally:
                await db.close()

    message = asyncio.run(go())
    assert "unique" in message.lower() and "cashuBsecret-proof" not in message


def test_providers_file(tmp_path: Path):
    f = tmp_path / "providers.toml"
    f.write_text(
        '[[providers]]\nname = "a"\nbase_url = "http://127.0.0.1:1/v1"\napi_key_env = "A_KEY"\nfee = 0.05\n'
        'models = ["m1"]\n[aliases]\n"fast" = ["m1", "m2"]\n'
    )
    s = load_settings({"CASHU_MINTS": "https://m", "PROVIDERS_FILE": str(f), "A_KEY": "k"}, env_file=None)
    (a,) = s.providers
    assert (a.name, a.api_key, str(a.fee), a.models) == ("a", "k", "0.05", frozenset({"m1"}))
    assert s.aliases == {"fast": ("m1", "m2")}
    both = load_settings({**BASE, "PROVIDERS_FILE": str(f), "A_KEY": "k"}, env_file=None)
    assert [p.name for p in both.providers] == ["upstream", "a"]  # UPSTREAM_BASE_URL stays a shortcut
    f.write_text('[[providers]]\nname = "x"\nbase_url = "http://h/v1"\ntype = "anthropic"\n')
    anth = load_settings({"CASHU_MINTS": "https://m", "PROVIDERS_FILE": str(f)}, env_file=None)
    assert anth.providers[0].kind == "anthropic"
    f.write_text('[[providers]]\nname = "x"\nbase_url = "http://h/v1"\ntype = "gemini"\n')
    with pytest.raises(ConfigError, match="type must be openai"):
        load_settings({"CASHU_MINTS": "https://m", "PROVIDERS_FILE": str(f)}, env_file=None)
