"""Shared fixtures: a real Nutshell mint, a test wallet, the fake upstream, and the node itself.

The node runs in-process (same event loop as the tests) on a loopback port, on SQLite and — when
``TEST_POSTGRES_URL`` is set, as in CI — on PostgreSQL too: every node test runs once per backend.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy.engine import make_url

from routstr.app import create_app
from routstr.billing.pipeline import WRITE_OFF
from routstr.config import Settings, load_settings
from routstr.devtools.fake_upstream import STATE, FakeUpstreamState, start_fake_upstream
from routstr.devtools.nutshell import NutshellMint, ensure_nutshell_venv
from routstr.devtools.test_wallet import TestWallet
from routstr.storage import accounts
from routstr.storage.db import Database

PRICING = """
[default]
prompt_sats_per_mtok = 1000
completion_sats_per_mtok = 3000

[models."gpt-4o-mini"]
prompt_sats_per_mtok = 2000
completion_sats_per_mtok = 7000

[models."dall-e-3"]
prompt_sats_per_mtok = 0
request_sats = 40

[models."whisper-1"]
prompt_sats_per_mtok = 0
request_sats = 3

[models."claude-haiku-4-5"]
prompt_sats_per_mtok = 1000
completion_sats_per_mtok = 5000
cached_prompt_sats_per_mtok = 100
cache_write_sats_per_mtok = 1250

[models."gpt-4o"]
prompt_usd_per_mtok = 2.5
completion_usd_per_mtok = 10
request_usd = 0.001
"""
UPSTREAM_KEY = "sk-upstream-secret"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mint: runs a real Nutshell mint")


class _WriteOffs(logging.Handler):
    """Collects the node's write-off warnings (a cost it could not charge) in this process."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if WRITE_OFF in message:
            self.seen.append(message)


@pytest.fixture(autouse=True)
def no_cost_written_off() -> Iterator[None]:
    """No test may make the node write a cost off: every answer is paid at its price (issue 13).
    Node processes a test starts are checked the same way when they stop (``NodeProcess.stop``)."""
    handler = _WriteOffs()
    logger = logging.getLogger("routstr.billing.pipeline")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert not handler.seen, f"the node wrote costs off: {handler.seen}"


def _backends() -> list[str]:
    return ["sqlite", "postgres"] if os.environ.get("TEST_POSTGRES_URL") else ["sqlite"]


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """A test that starts a node of its own runs once per storage backend (PostgreSQL when the
    suite is given one, as in CI)."""
    return str(request.param)


@pytest.fixture(scope="session")
def nutshell_python() -> Path:
    return ensure_nutshell_venv()


@pytest.fixture(scope="session")
def mint(nutshell_python: Path) -> Iterator[NutshellMint]:
    # sat and msat keysets: the node takes tokens of both units
    with NutshellMint("node-tests", units=("sat", "msat")) as m:
        yield m


@pytest.fixture(scope="session")
def mint_url(mint: NutshellMint) -> str:
    return mint.url


@pytest.fixture(scope="session")
def fee_mint(nutshell_python: Path) -> Iterator[NutshellMint]:
    """A second mint, one that charges an input fee (NUT-02): 1 sat per proof spent."""
    with NutshellMint("node-fee", input_fee_ppk=1000) as m:
        yield m


@pytest.fixture(scope="session")
def wallet(nutshell_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestWallet]:
    with TestWallet(tmp_path_factory.mktemp("wallet")) as w:
        yield w


@dataclass
class Upstream:
    url: str
    state: FakeUpstreamState


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def fake_upstream() -> AsyncIterator[Upstream]:
    runner, url = await start_fake_upstream(expected_api_key=UPSTREAM_KEY, timeout_s=3)
    yield Upstream(url, runner.app[STATE])
    await runner.cleanup()


async def _postgres_db(base: str) -> tuple[str, str]:
    """A fresh database per test session on the CI server, so runs never see each other's rows."""
    import asyncpg

    name = "routstr_t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    root = base.rsplit("/", 1)[0]
    return name, f"{root}/{name}"


async def _drop_postgres_db(base: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(base.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    if _SECRETS_DIR is not None:
        (_SECRETS_DIR / f"{name}.secret").unlink(missing_ok=True)


_SECRETS_DIR: Path | None = None


def _postgres_secret_file(db_url: str) -> str:
    """A node on PostgreSQL keeps its secret in ./routstr.secret by default: the repository, when
    tests run. Tests put it in a temporary folder instead, one file per test database, so every
    process and CLI command on that database (whatever the test's tmp_path) finds the same one."""
    global _SECRETS_DIR
    if _SECRETS_DIR is None:
        _SECRETS_DIR = Path(tempfile.mkdtemp(prefix="routstr-test-secrets-"))
        atexit.register(shutil.rmtree, _SECRETS_DIR, True)
    return str(_SECRETS_DIR / f"{make_url(db_url).database}.secret")


@asynccontextmanager
async def fresh_database(backend: str, tmp: Path) -> AsyncIterator[str]:
    """The URL of an empty database: a file in ``tmp``, or a new database on the PostgreSQL server."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'node.sqlite3'}"
        return
    base = os.environ["TEST_POSTGRES_URL"]
    name, url = await _postgres_db(base)
    try:
        yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        await _drop_postgres_db(base, name)


@dataclass
class NodeHandle:
    url: str
    settings: Settings
    app: web.Application
    db: Database
    upstream: Upstream
    backend: str

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    async def key_row(self, key_id: int) -> accounts.KeyRow:
        async with self.db.read() as conn:
            row = await accounts.key_by_id(conn, key_id)
        assert row is not None
        return row

    async def ledger_sums(self, key_id: int) -> dict[str, int]:
        async with self.db.read() as conn:
            return await accounts.ledger_sums(conn, key_id)

    async def assert_books_balance(self, key_id: int) -> accounts.KeyRow:
        """The ledger sums to the stored balance and reservation (see routstr.core.ledger)."""
        row = await self.key_row(key_id)
        s = await self.ledger_sums(key_id)
        available = s.get("credit", 0) - s.get("reserve", 0) + s.get("release", 0) - s.get("refund", 0)
        reserved = s.get("reserve", 0) - s.get("release", 0) - s.get("charge", 0)
        assert available == row.balance_msat, (s, row)
        assert reserved == row.reserved_msat, (s, row)
        assert row.balance_msat >= 0 and row.reserved_msat >= 0
        return row


def node_env(mint_url: str, upstream_url: str, db_url: str, pricing: Path, **extra: str) -> dict[str, str]:
    return {
        "UPSTREAM_BASE_URL": upstream_url,
        "UPSTREAM_API_KEY": UPSTREAM_KEY,
        "CASHU_MINTS": mint_url,
        "DATABASE_URL": db_url,
        "BTC_USD_PRICE": "100000",
        "PRICING_FILE": str(pricing),
        "NAME": "test node",
        # generous: tests hammer one key; tests/node/test_rate_limits.py sets the real defaults
        "RATE_LIMIT_REQUESTS_PER_MINUTE": "100000",
        "RATE_LIMIT_CONCURRENT": "1000",
        **({} if db_url.startswith("sqlite") else {"SECRET_KEY_FILE": _postgres_secret_file(db_url)}),
        **extra,
    }


@asynccontextmanager
async def running_node(
    backend: str, mints: str, upstream: Upstream, tmp: Path, **extra_env: str
) -> AsyncIterator[NodeHandle]:
    """A node in this event loop on a loopback port, with a fresh database of the given backend."""
    pricing = tmp / "pricing.toml"
    pricing.write_text(PRICING)
    async with fresh_database(backend, tmp) as db_url:
        settings = load_settings(node_env(mints, upstream.url, db_url, pricing, **extra_env), env_file=None)
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        from routstr.node import NODE

        try:
            yield NodeHandle(f"http://127.0.0.1:{port}", settings, app, app[NODE].db, upstream, backend)
        finally:
            await runner.cleanup()


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=_backends())
async def node(
    request: pytest.FixtureRequest,
    mint_url: str,
    fake_upstream: Upstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[NodeHandle]:
    backend: str = request.param
    async with running_node(
        backend, mint_url, fake_upstream, tmp_path_factory.mktemp(f"node-{backend}")
    ) as n:
        yield n


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def chat_body(
    content: str = "Hello there, node!", model: str = "gpt-4o-mini", **extra: Any
) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}
