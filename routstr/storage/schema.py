"""The tables. Money lives here: balances, the ledger, and the proofs that back them.

Balances and reservations are msat integers guarded by CHECK constraints, so no code path can
take them below zero even by mistake. Times are unix milliseconds (portable across SQLite and
PostgreSQL, cheap to compare).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    true,
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),  # "sk" (issued key) or "token" (a Cashu token used as key)
    Column("mint_url", Text, nullable=True),  # the mint whose eCash backs this balance
    Column("unit", String(8), nullable=False, server_default="sat"),
    Column("balance_msat", BigInteger, nullable=False, server_default="0"),
    Column("reserved_msat", BigInteger, nullable=False, server_default="0"),
    Column("total_spent_msat", BigInteger, nullable=False, server_default="0"),
    Column("total_requests", BigInteger, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    # Refund-LNURL / Key-Expiry-Time: where and when (unix ms) the rest is paid out automatically
    Column("refund_address", Text, nullable=True),
    Column("expires_at", BigInteger, nullable=True),
    # a token key's sk- key (HMAC of the one ``GET /v1/balance/info`` hands out): a second key_hash
    Column("sk_alias_hash", String(64), nullable=True),
    # has a row in key_limits (a child key, or a key with a spending limit): the hot path's plain
    # statements skip it and the limited ones take over (storage/limited_ops.py)
    Column("limited", Boolean, nullable=False, server_default=false()),
    CheckConstraint("balance_msat >= 0", name="balance_nonnegative"),
    Index("ix_api_keys_sk_alias_hash", "sk_alias_hash", unique=True),
    CheckConstraint("reserved_msat >= 0", name="reserved_nonnegative"),
)

ledger = Table(
    "ledger",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key_id", BigInteger, ForeignKey("api_keys.id"), nullable=False),
    # credit | reserve | release | charge | refund
    Column("kind", String(16), nullable=False),
    Column("amount_msat", BigInteger, nullable=False),
    # the node's time-ordered id of the request (never the client's X-Request-ID), or a swap id
    Column("request_id", String(64), nullable=True),
    Column("model", Text, nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("completion_tokens", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("amount_msat >= 0", name="amount_nonnegative"),
    Index("ix_ledger_key_id", "key_id"),
    Index("ix_ledger_request_id", "request_id"),
)

reservations = Table(
    "reservations",
    metadata,
    Column("request_id", String(64), primary_key=True),
    Column("key_id", BigInteger, ForeignKey("api_keys.id"), nullable=False),
    Column("amount_msat", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    # the limited key whose counters hold this reservation too (key_limits); key_id is its payer's
    Column("limit_key_id", BigInteger, nullable=True),
    # one B-tree, no expiry index: rows live for one request and the sweeper's scan is of the few in flight
    sqlite_with_rowid=False,
)

# Spending limits (core/budgets.py): a child key spends its parent's (its payer's) balance, at most
# balance_limit msat a period; a key created with a limit is its own payer. No money is here: the
# counters bound what the key may reserve, in the transactions that move the payer's money.
key_limits = Table(
    "key_limits",
    metadata,
    Column("key_id", BigInteger, ForeignKey("api_keys.id"), primary_key=True),
    Column("payer_id", BigInteger, ForeignKey("api_keys.id"), nullable=False),
    Column("balance_limit_msat", BigInteger, nullable=True),  # NULL: only the payer's balance bounds it
    Column("limit_reset", String(16), nullable=True),  # daily | weekly | monthly | NULL (never)
    Column("resets_at", BigInteger, nullable=True),  # unix ms of the next reset
    Column("spent_msat", BigInteger, nullable=False, server_default="0"),  # charged this period
    Column("reserved_msat", BigInteger, nullable=False, server_default="0"),  # held in flight
    Column("total_spent_msat", BigInteger, nullable=False, server_default="0"),
    Column("total_requests", BigInteger, nullable=False, server_default="0"),
    Column("valid_until", BigInteger, nullable=True),  # unix ms; refused from then on
    Column("created_at", BigInteger, nullable=False),
    CheckConstraint("spent_msat >= 0", name="spent_nonnegative"),
    CheckConstraint("reserved_msat >= 0", name="reserved_nonnegative"),
    Index("ix_key_limits_payer_id", "payer_id"),
)

# Every swap the node sends to a mint. Outputs (secret, blinding factor, amount, keyset) are
# written BEFORE the request leaves, so a crash after the mint signed can be recovered (NUT-09).
swaps = Table(
    "swaps",
    metadata,
    Column("id", String(32), primary_key=True),
    # redeem | refund | convert (a foreign mint's token melted there to mint here, over Lightning)
    # | mint (a paid Lightning invoice's eCash, minted into the node's wallet)
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),  # pending | done | failed
    Column("mint_url", Text, nullable=False),
    Column("unit", String(8), nullable=False),
    Column("key_id", BigInteger, ForeignKey("api_keys.id"), nullable=True),
    Column("token_hash", String(64), nullable=True, unique=True),  # redeem: a token is redeemed once
    # redeem: the HMAC of the token's DLEQ blinding factors, which a re-presented token must match
    # (``cashu.identity``); NULL when the token carried none
    Column("holder_mark", String(64), nullable=True),
    # JSON list of proofs; a user's token's ones (redeem, convert) are wiped once the swap ends
    Column("inputs", Text, nullable=False),
    Column("outputs", Text, nullable=False),  # JSON list of prepared outputs (amount, id, secret, r, B_)
    Column("user_amount", BigInteger, nullable=False, server_default="0"),  # refund: units for the user
    Column("result_token", Text, nullable=True),  # refund: the token handed to the user
    # refund: False while the token has not been handed out (e.g. the node crashed before answering)
    Column("collected", Boolean, nullable=False, server_default=false()),
    Column("error", Text, nullable=True),
    # convert: JSON of the foreign mint, its melt quote and our mint quote here (for recovery)
    Column("detail", Text, nullable=True),
    # the process that sent it (``core.ids.PROCESS``): recovery leaves a live process's swap alone
    Column("executor", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # refund: when the mint first said its token was spent (until then a refund call hands it out again)
    Column("spent_at", BigInteger, nullable=True),
    Index("ix_swaps_state", "state"),
    Index("ix_swaps_key_id", "key_id", "created_at"),  # a key's refunds and history
)

proofs = Table(
    "proofs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("mint_url", Text, nullable=False),
    Column("unit", String(8), nullable=False),
    Column("keyset_id", String(80), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("secret", Text, nullable=False, unique=True),
    Column("C", String(80), nullable=False),
    Column("Y", String(80), nullable=False, unique=True),
    Column("state", String(16), nullable=False),  # unspent | reserved | spent
    Column("swap_id", String(32), nullable=True),  # the swap that produced it
    Column("spent_by", String(32), nullable=True),  # the swap that consumes it
    Column("created_at", BigInteger, nullable=False),
    Index("ix_proofs_mint_state_amount", "mint_url", "unit", "state", "amount"),
    Index("ix_proofs_spent_by", "spent_by"),
)

# Lightning top-ups through the primary mint's NUT-04 quotes. ``id`` is a random handle only the
# creator holds; the whole bolt11 (not its payment hash) also leads to a "create" invoice's key
# (POST /lightning/recover); ``swap_id`` is the mint step, whose outputs are recorded before the mint
# is asked, so a crash there is finished by NUT-09 restore.
invoices = Table(
    "invoices",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("quote_id", Text, nullable=False, unique=True),
    Column("mint_url", Text, nullable=False),
    Column("unit", String(8), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("bolt11", Text, nullable=False),
    Column("purpose", String(8), nullable=False),  # create | topup
    Column("key_id", BigInteger, ForeignKey("api_keys.id"), nullable=True),  # topup: set at once
    Column("state", String(16), nullable=False),  # pending | settled | expired
    Column("swap_id", String(32), nullable=True, unique=True),
    Column("expires_at", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("payment_hash", String(64), nullable=True),  # read from the bolt11; None if unreadable
    Column("paid_at", BigInteger, nullable=True),  # when it was credited (settled)
    # topup: the key it was made with, sealed (core/sealed.py); its paid status hands it back
    Column("api_key_sealed", Text, nullable=True),
    Index("ix_invoices_state", "state"),
    Index("ix_invoices_payment_hash", "payment_hash"),
)

# Tokens for the operator's scripts (admin API, CLI): only their HMAC is stored; revocable.
admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

# Dashboard sessions, in the database so every process of a fleet knows them. The cookie's value is
# stored only as its HMAC; the CSRF token is derived from the cookie, not stored.
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("seen_at", BigInteger, nullable=False),
    Index("ix_admin_sessions_expires_at", "expires_at"),
)

# Background jobs that must run once across a fleet (sweeps, recovery, watchers): the holder of a
# job's lease runs it, and renews the lease each round; a lease that expired can be taken over.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

# Per-key rate limits set by the operator (routstr/limits: 0 turns a limit off); a key without a row
# has the node's defaults (RATE_LIMIT_*). Every process of a fleet loads them (routstr/jobs.py).
key_rate_limits = Table(
    "key_rate_limits",
    metadata,
    Column("key_id", BigInteger, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True),
    Column("requests_per_minute", BigInteger, nullable=False),
    Column("tokens_per_hour", BigInteger, nullable=False),
    Column("concurrent", BigInteger, nullable=False),
)

node_settings = Table(
    "node_settings",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Webhooks a key holder registered for their key (POST /v1/webhooks). The signing secret has to be
# read back to sign, so it is sealed (core/sealed.py), never stored in the clear.
webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(32), primary_key=True),  # wh_…, random: not enumerable
    Column("key_id", BigInteger, ForeignKey("api_keys.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", Text, nullable=False),  # comma list: balance.low,key.expired
    Column("secret_sealed", Text, nullable=False),
    # balance.low: fires when balance + reserved drops below this (NULL: not subscribed)
    Column("low_balance_msat", BigInteger, nullable=True),
    # balance.low fired for the current crossing; reset once the balance is back at the threshold
    Column("low_fired", Boolean, nullable=False, server_default=false()),
    # key.expired: the key's expires_at (unix ms) the event was emitted for
    Column("expiry_notified", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_webhooks_key_id", "key_id"),
)

# The outbox: an event is written here in the transaction that decides it, then sent (and retried)
# by the delivery job until the receiver answers 2xx or the attempts run out. At least once:
# receivers de-duplicate on ``event_id``.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False, unique=True),
    Column("webhook_id", String(32), ForeignKey("webhooks.id"), nullable=False),
    Column("event", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # the exact JSON body sent (and signed) on every attempt
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=True),  # NULL once delivered or given up
    Column("delivered_at", BigInteger, nullable=True),
    Column("gave_up_at", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),  # "HTTP 500", "timeout", …: never a secret or the URL
    Column("created_at", BigInteger, nullable=False),
    Index("ix_webhook_deliveries_next_attempt_at", "next_attempt_at"),
    Index("ix_webhook_deliveries_webhook_id", "webhook_id"),
    Index("ix_webhook_deliveries_created_at", "created_at"),
)

# Providers added through the admin API or ``routstr providers`` (those of PROVIDERS_FILE and
# UPSTREAM_BASE_URL are not here). The API key is sealed with the node's secret
# (``routstr.core.sealed``, purpose "provider-key"), never stored in the clear.
providers = Table(
    "providers",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("base_url", Text, nullable=False),
    Column("kind", String(16), nullable=False, server_default="openai"),  # openai | anthropic
    Column("api_key_sealed", Text, nullable=True),  # NULL: the provider takes no key
    Column("fee", String(32), nullable=False, server_default="0"),  # a decimal: 0.05 = +5%
    Column("models", Text, nullable=True),  # JSON list; NULL: whatever its /models lists
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Per-model settings over the pricing file: a price in the pricing file's terms (JSON of one
# ``[models."id"]`` table; NULL: the file's price), whether the model is sold, and the provider model
# ids a public id stands for (JSON list; NULL: not an alias here).
model_settings = Table(
    "model_settings",
    metadata,
    Column("model", String(255), primary_key=True),
    Column("price", Text, nullable=True),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("aliases", Text, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)

# the dashboard's figures (requests and revenue per hour and per model) read charges by time
Index("ix_ledger_kind_created_at", ledger.c.kind, ledger.c.created_at)
