"""key_rate_limits: the per-key rate-limit overrides in a table of their own (one row a key), moved out
of the one JSON row ``node_settings.rate_limit_overrides`` (issue 16). Overrides of keys that no longer
exist, or whose values are not whole numbers from 0 to 2^63 - 1, applied to nobody or could not be
stored: they are not moved. The downgrade writes the JSON row back.

Revision ID: 0012_key_rate_limits
Revises: 0011_invoice_sealed_key
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012_key_rate_limits"
down_revision = "0011_invoice_sealed_key"
branch_labels = None
depends_on = None

SETTING = "rate_limit_overrides"
FIELDS = ("requests_per_minute", "tokens_per_hour", "concurrent")
MAX = 2**63 - 1

node_settings = sa.table("node_settings", sa.column("name", sa.String), sa.column("value", sa.Text))
api_keys = sa.table("api_keys", sa.column("id", sa.BigInteger))


def _decoded(raw: str | None) -> dict[int, tuple[int, int, int]]:
    """The JSON row's overrides, ``{"<key id>": [per minute, per hour, concurrent]}``, the valid ones."""
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    found: dict[int, tuple[int, int, int]] = {}
    for k, v in data.items() if isinstance(data, dict) else ():
        ok = isinstance(v, list) and len(v) == 3
        if not (ok and str(k).isascii() and str(k).isdigit()) or int(k) > MAX:
            continue
        if all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX for x in v):
            found[int(k)] = (v[0], v[1], v[2])
    return found


def upgrade() -> None:
    table = op.create_table(
        "key_rate_limits",
        sa.Column("key_id", sa.BigInteger(), nullable=False),
        sa.Column("requests_per_minute", sa.BigInteger(), nullable=False),
        sa.Column("tokens_per_hour", sa.BigInteger(), nullable=False),
        sa.Column("concurrent", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name=op.f("fk_key_rate_limits_key_id"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_key_rate_limits")),
    )
    bind = op.get_bind()
    where = node_settings.c.name == SETTING
    overrides = _decoded(bind.execute(sa.select(node_settings.c.value).where(where)).scalar())
    if overrides:
        known = bind.execute(sa.select(api_keys.c.id).where(api_keys.c.id.in_(list(overrides)))).scalars()
        rows: list[dict[str, Any]] = [
            {"key_id": k, **dict(zip(FIELDS, overrides[k], strict=True))} for k in sorted(set(known))
        ]
        if rows:
            op.bulk_insert(table, rows)
    bind.execute(sa.delete(node_settings).where(where))


def downgrade() -> None:
    bind = op.get_bind()
    table = sa.table("key_rate_limits", sa.column("key_id", sa.BigInteger), *(sa.column(f) for f in FIELDS))
    rows = bind.execute(sa.select(table).order_by(table.c.key_id)).all()
    bind.execute(sa.delete(node_settings).where(node_settings.c.name == SETTING))
    if rows:
        value = {str(r.key_id): [r.requests_per_minute, r.tokens_per_hour, r.concurrent] for r in rows}
        encoded = json.dumps(value, separators=(",", ":"))
        bind.execute(sa.insert(node_settings).values(name=SETTING, value=encoded))
    op.drop_table("key_rate_limits")
