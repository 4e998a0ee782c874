"""a token key's sk- alias (GET /v1/balance/info answers it), when a refund token was seen spent,
and swaps by key (refunds, history) (issue 15)

Revision ID: 0009_key_alias
Revises: 0008_ln_hash
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_key_alias"
down_revision = "0008_ln_hash"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("sk_alias_hash", sa.String(length=64), nullable=True))
    op.create_index("ix_api_keys_sk_alias_hash", "api_keys", ["sk_alias_hash"], unique=True)
    with op.batch_alter_table("swaps") as batch:
        batch.add_column(sa.Column("spent_at", sa.BigInteger(), nullable=True))
    op.create_index("ix_swaps_key_id", "swaps", ["key_id", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_swaps_key_id", table_name="swaps")
    with op.batch_alter_table("swaps") as batch:
        batch.drop_column("spent_at")
    op.drop_index("ix_api_keys_sk_alias_hash", table_name="api_keys")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("sk_alias_hash")
