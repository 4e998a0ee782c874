"""What the operator's dashboard and admin API read: keys, requests, hourly figures.

Plain functions of a connection returning plain data, so the JSON API and the HTML pages share them.
Nothing here returns a key or its hash. A request is its ledger rows: charged (a ``charge`` row, the
cost) or not charged (its reservation released whole: a ``release`` row and no charge). Figures by
time read the ``(kind, created_at)`` index; lists page backwards by row id (``before``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select, union
from sqlalchemy.ext.asyncio import AsyncConnection

from routstr.core import ledger as rules
from routstr.core.books import MintBooks
from routstr.core.money import UNIT_MSAT
from routstr.storage import limit_overrides
from routstr.storage.accounts import KEY_COLS
from routstr.storage.books import books
from routstr.storage.schema import api_keys, ledger, swaps

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class KeySummary:
    id: int
    kind: str  # sk | token | xcashu
    mint: str | None
    unit: str
    balance_msat: int
    reserved_msat: int
    total_spent_msat: int
    total_requests: int
    created_at: int
    expires_at: int | None
    refund_address: str | None
    limits_override: dict[str, int] | None  # per-key rate limits (None: the node's defaults)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    kind: str
    amount_msat: int
    request_id: str | None
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RequestEntry:
    id: int  # the ledger row: pass it as ``before`` for the next page
    created_at: int
    key_id: int
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_msat: int
    request_id: str | None
    charged: bool

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": "charged" if self.charged else "not charged"}


_KEY_COLS = (*KEY_COLS, api_keys.c.created_at, api_keys.c.expires_at, api_keys.c.refund_address)


async def _limit_overrides(conn: AsyncConnection, key_ids: list[int]) -> dict[int, dict[str, int]]:
    """The rate-limit overrides of these keys (those without one have the node's defaults)."""
    return {
        k: {
            "requests_per_minute": v.requests_per_minute,
            "tokens_per_hour": v.tokens_per_hour,
            "concurrent": v.concurrent,
        }
        for k, v in (await limit_overrides.read(conn, key_ids)).items()
    }


async def _summaries(
    conn: AsyncConnection, where: Sequence[ColumnElement[bool]], limit: int
) -> list[KeySummary]:
    q = select(*_KEY_COLS).where(*where).order_by(api_keys.c.id.desc()).limit(limit)
    rows = (await conn.execute(q)).all()
    limits = await _limit_overrides(conn, [int(r.id) for r in rows]) if rows else {}
    return [
        KeySummary(
            id=int(r.id),
            kind=str(r.kind),
            mint=r.mint_url,
            unit=str(r.unit),
            balance_msat=int(r.balance_msat),
            reserved_msat=int(r.reserved_msat),
            total_spent_msat=int(r.total_spent_msat),
            total_requests=int(r.total_requests),
            created_at=int(r.created_at),
            expires_at=r.expires_at,
            refund_address=r.refund_address,
            limits_override=limits.get(int(r.id)),
        )
        for r in rows
    ]


async def list_keys(conn: AsyncConnection, limit: int = 50, before: int | None = None) -> list[KeySummary]:
    """Keys newest first; ``before``: a key id, for the next page."""
    return await _summaries(conn, [] if before is None else [api_keys.c.id < before], limit)


async def keys_by_id(conn: AsyncConnection, key_id: int) -> list[KeySummary]:
    return await _summaries(conn, [api_keys.c.id == key_id], 1)


async def keys_by_hash(conn: AsyncConnection, hashes: Sequence[str], limit: int = 50) -> list[KeySummary]:
    """Keys known by one of these hashes: a key's own (an ``sk-`` key, a token used as a key), or the
    hash of a token that was redeemed into a key (``/v1/balance/create``, a top-up, X-Cashu)."""
    if not hashes:
        return []
    ids = union(
        select(api_keys.c.id.label("id")).where(api_keys.c.key_hash.in_(hashes)),
        select(swaps.c.key_id.label("id")).where(swaps.c.token_hash.in_(hashes), swaps.c.key_id.is_not(None)),
    ).subquery()
    return await _summaries(conn, [api_keys.c.id.in_(select(ids.c.id))], limit)


async def key_ledger(conn: AsyncConnection, key_id: int, limit: int = 50) -> list[LedgerEntry]:
    """A key's latest ledger rows, newest first."""
    q = select(ledger).where(ledger.c.key_id == key_id).order_by(ledger.c.id.desc()).limit(limit)
    return [
        LedgerEntry(
            id=int(r.id),
            kind=str(r.kind),
            amount_msat=int(r.amount_msat),
            request_id=r.request_id,
            model=r.model,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens,
            created_at=int(r.created_at),
        )
        for r in (await conn.execute(q)).all()
    ]


def _kind(conn: AsyncConnection, table: Any = ledger) -> ColumnElement[str]:
    """A ledger row's kind, on SQLite in a form no index serves (``kind || ''``): without statistics
    SQLite would look a request's charge up through the (kind, created_at) index, a scan of every
    charge, instead of through ``ix_ledger_request_id``, and sort every charge to page by id.
    PostgreSQL plans both well from its statistics (and badly around the expression)."""
    column: ColumnElement[str] = table.c.kind
    return column.concat("") if conn.dialect.name == "sqlite" else column


def _uncharged_release(
    conn: AsyncConnection, kind: ColumnElement[str] = ledger.c.kind
) -> ColumnElement[bool]:
    """A ``release`` row of a request that was never charged (its whole reservation came back)."""
    charge = ledger.alias("charge")
    charged = exists(
        select(literal(1)).where(
            charge.c.request_id == ledger.c.request_id, _kind(conn, charge) == rules.CHARGE
        )
    )
    return and_(kind == rules.RELEASE, ~charged)


async def list_requests(
    conn: AsyncConnection,
    key_id: int | None = None,
    model: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[RequestEntry]:
    """Requests newest first: charged ones with their cost and tokens, and those not charged."""
    kind = _kind(conn)  # newest rows first through the primary key, until ``limit``
    where: list[ColumnElement[bool]] = [or_(kind == rules.CHARGE, _uncharged_release(conn, kind))]
    if key_id is not None:
        where.append(ledger.c.key_id == key_id)
    if model is not None:
        where.append(ledger.c.model == model)
    if before is not None:
        where.append(ledger.c.id < before)
    q = select(ledger).where(*where).order_by(ledger.c.id.desc()).limit(limit)
    out = []
    for r in (await conn.execute(q)).all():
        charged = r.kind == rules.CHARGE
        out.append(
            RequestEntry(
                id=int(r.id),
                created_at=int(r.created_at),
                key_id=int(r.key_id),
                model=r.model,
                prompt_tokens=r.prompt_tokens if charged else None,
                completion_tokens=r.completion_tokens if charged else None,
                cost_msat=int(r.amount_msat) if charged else 0,
                request_id=r.request_id,
                charged=charged,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Overview:
    since: int  # unix ms, the start of the first hour
    # oldest first: {start, requests, charged, revenue_msat, paid_in_msat, refunded_msat}
    hours: list[dict[str, int]]
    # {model, requests, charged, not_charged, prompt_tokens, completion_tokens, tokens, revenue_msat}
    models: list[dict[str, Any]]
    books: list[dict[str, Any]]  # per mint and unit: wallet vs liabilities, withdrawable earnings

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def books_entry(b: MintBooks) -> dict[str, Any]:
    """One mint and unit of the books, with what may be withdrawn (as ``routstr withdraw`` counts)."""
    return {
        "mint": b.mint_url,
        "unit": b.unit,
        "wallet_msat": b.wallet_msat,
        "liabilities_msat": b.owed_msat,
        "surplus_msat": b.surplus_msat,
        "withdrawable": max(b.surplus_msat, 0) // UNIT_MSAT[b.unit],  # whole units
    }


async def overview(conn: AsyncConnection, now_ms: int, hours: int = 24) -> Overview:
    """Requests and revenue per hour and per model over the last ``hours`` hours (the current one
    included), what users paid in and got back per hour, and the books."""
    first = now_ms // HOUR_MS - hours + 1
    since = first * HOUR_MS
    bucket = (ledger.c.created_at // HOUR_MS).label("bucket")
    recent = ledger.c.created_at >= since
    per_hour: dict[int, dict[str, int]] = {
        h: {
            "start": h * HOUR_MS,
            "requests": 0,
            "charged": 0,
            "revenue_msat": 0,
            "paid_in_msat": 0,
            "refunded_msat": 0,
        }
        for h in range(first, first + hours)
    }
    flows = select(bucket, ledger.c.kind, func.sum(ledger.c.amount_msat)).where(
        ledger.c.kind.in_((rules.CREDIT, rules.REFUND)), recent
    )
    for h, kind, total in (await conn.execute(flows.group_by(bucket, ledger.c.kind))).all():
        if int(h) in per_hour:
            per_hour[int(h)]["paid_in_msat" if kind == rules.CREDIT else "refunded_msat"] += int(total or 0)
    charged = select(bucket, func.count(), func.sum(ledger.c.amount_msat)).where(
        ledger.c.kind == rules.CHARGE, recent
    )
    for h, n, revenue in (await conn.execute(charged.group_by(bucket))).all():
        if int(h) in per_hour:
            row = per_hour[int(h)]
            row["requests"] += int(n)
            row["charged"] += int(n)
            row["revenue_msat"] += int(revenue or 0)
    uncharged = select(bucket, func.count()).where(_uncharged_release(conn), recent)
    for h, n in (await conn.execute(uncharged.group_by(bucket))).all():
        if int(h) in per_hour:
            per_hour[int(h)]["requests"] += int(n)
    by_model: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "charged": 0,
            "not_charged": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "revenue_msat": 0,
        }
    )
    model_q = select(
        ledger.c.model,
        func.count(),
        func.sum(ledger.c.prompt_tokens),
        func.sum(ledger.c.completion_tokens),
        func.sum(ledger.c.amount_msat),
    ).where(ledger.c.kind == rules.CHARGE, recent)
    for model, n, pt, ct, revenue in (await conn.execute(model_q.group_by(ledger.c.model))).all():
        m = by_model[model or ""]
        m["charged"] += int(n)
        m["prompt_tokens"] += int(pt or 0)
        m["completion_tokens"] += int(ct or 0)
        m["revenue_msat"] += int(revenue or 0)
    uncharged_q = select(ledger.c.model, func.count()).where(_uncharged_release(conn), recent)
    for model, n in (await conn.execute(uncharged_q.group_by(ledger.c.model))).all():
        by_model[model or ""]["not_charged"] += int(n)
    models = [
        {
            "model": name,
            "requests": m["charged"] + m["not_charged"],
            **m,
            "tokens": m["prompt_tokens"] + m["completion_tokens"],
        }
        for name, m in sorted(by_model.items(), key=lambda kv: -kv[1]["revenue_msat"])
    ]
    return Overview(
        since=since,
        hours=[per_hour[h] for h in sorted(per_hour)],
        models=models,
        books=[books_entry(b) for b in await books(conn)],
    )
