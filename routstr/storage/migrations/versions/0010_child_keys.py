"""child keys and spending limits: key_limits, api_keys.limited, reservations.limit_key_id (issue 15)

Revision ID: 0010_child_keys
Revises: 0009_key_alias
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_child_keys"
down_revision = "0009_key_alias"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("limited", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("reservations") as batch:
        batch.add_column(sa.Column("limit_key_id", sa.BigInteger(), nullable=True))
    op.create_table(
        "key_limits",
        sa.Column("key_id", sa.BigInteger(), nullable=False),
        sa.Column("payer_id", sa.BigInteger(), nullable=False),
        sa.Column("balance_limit_msat", sa.BigInteger(), nullable=True),
        sa.Column("limit_reset", sa.String(length=16), nullable=True),
        sa.Column("resets_at", sa.BigInteger(), nullable=True),
        sa.Column("spent_msat", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reserved_msat", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_spent_msat", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("valid_until", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("spent_msat >= 0", name=op.f("ck_key_limits_spent_nonnegative")),
        sa.CheckConstraint("reserved_msat >= 0", name=op.f("ck_key_limits_reserved_nonnegative")),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_key_limits_key_id")),
        sa.ForeignKeyConstraint(["payer_id"], ["api_keys.id"], name=op.f("fk_key_limits_payer_id")),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_key_limits")),
    )
    op.create_index("ix_key_limits_payer_id", "key_limits", ["payer_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_key_limits_payer_id", table_name="key_limits")
    op.drop_table("key_limits")
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("limit_key_id")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("limited")
