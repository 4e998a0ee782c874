"""The node's settings: one frozen dataclass, each default written once.

A default is written as the field's default here, except a value owned by a package this module
imports (the price sources, the breaker's and the catalogue's numbers, the rate limits, the pool size):
such a package cannot import config, so the field names its constant. ``load_settings`` falls back on
``DEFAULTS``, never on a literal; components are given their values when the node is built
(``routstr.node``) and otherwise take them from ``DEFAULTS`` or have no default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from ipaddress import IPv4Network, IPv6Network

from routstr.core.errors import ConfigError
from routstr.core.pricing import PriceBook
from routstr.limits.rules import DEFAULT_LIMITS
from routstr.rates.sources import DEFAULT_SOURCES, Source
from routstr.storage.db import POOL_SIZE
from routstr.upstream.breaker import COOLDOWN_S, FAILURES_TO_OPEN
from routstr.upstream.catalogue import IMAGE_INPUT_TOKENS, MIN_FITTED_OUTPUT
from routstr.upstream.spec import ProviderSpec

# Without a provider in the environment or a file, the node starts only on providers stored in its
# database (routstr providers add, or the admin API); `routstr serve` checks before it starts.
NO_PROVIDER = (
    "UPSTREAM_BASE_URL is not set; set it to your provider, e.g. https://api.openai.com/v1 "
    "(or set PROVIDERS_FILE, or store one with routstr providers add)"
)

# Set by ``routstr serve --workers N`` (routstr.workers) in the environment of each worker it starts.
WORKER_ENV = "ROUTSTR_WORKER"


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


@dataclass(frozen=True)
class Settings:
    providers: tuple[ProviderSpec, ...]
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)  # public id -> provider model ids
    cashu_mints: tuple[str, ...] = ()
    # written as the README documents it (DATABASE_URL), held with its async driver
    database_url: str = normalise_database_url("sqlite:///routstr.sqlite3")
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
    min_fitted_max_tokens: int = MIN_FITTED_OUTPUT
    image_input_tokens: int = IMAGE_INPUT_TOKENS
    # the lease of a running request's reservation: renewed every third of it while the request runs
    # (routstr.billing.leases), so only a dead request's (crash, kill) expires and is swept
    reservation_ttl_s: int = 120
    provider_failures_to_open: int = FAILURES_TO_OPEN  # retryable failures in a row: provider cools down
    provider_cooldown_s: int = COOLDOWN_S
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
    rate_limit_requests_per_minute: int = DEFAULT_LIMITS.requests_per_minute  # per key; 0: no limit
    rate_limit_tokens_per_hour: int = DEFAULT_LIMITS.tokens_per_hour
    rate_limit_concurrent: int = DEFAULT_LIMITS.concurrent
    # X-Cashu requests a minute, counted before the token is redeemed (each token is a fresh key, so
    # per-key limits never bind): per client address, and for the whole node (fleet-wide with Redis)
    xcashu_limit_per_address: int = 120
    xcashu_limit_total: int = 3000
    # refused token redemptions a minute per client address (routstr.wallet.redeem_gate); 0: off
    redeem_limit_per_address: int = 60
    db_pool_size: int = POOL_SIZE  # PostgreSQL connections per process (3x that at most: bursts, hot path)
    redis_url: str = ""  # set: rate-limit counters shared by a fleet through Redis
    redis_prefix: str = "routstr:rl"  # namespace of those counters (one per fleet)
    receive_ln_address: str = ""  # earnings paid here automatically once they reach the threshold
    receive_ln_threshold_sats: int = 10_000  # the earnings (sats) that trigger that payout
    missing_key_status: int = 401  # 402: answer NUT-24 wallets with Payment Required instead
    log_level: str = "INFO"
    log_format: str = "text"  # or json: one object per line
    log_client_ips: bool = False  # add the client's address to a request's log lines
    # reverse proxies whose X-Forwarded-For names the client (routstr.api.client_address)
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    metrics_host: str = "127.0.0.1"  # /metrics without a token here, when metrics_port is set
    metrics_port: int | None = None
    # one of the processes of `routstr serve --workers N` (ROUTSTR_WORKER): they share their ports
    # (SO_REUSEPORT) and leave the start-up recovery of young swaps to the supervisor (routstr.jobs)
    worker: bool = False

    @property
    def primary_mint(self) -> str:
        return self.cashu_mints[0]


# Every default, for the loader and for components built outside ``routstr.node`` (tests, commands).
DEFAULTS = Settings(providers=())
