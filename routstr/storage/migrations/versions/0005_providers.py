"""providers and model overrides managed from the admin API (provider keys sealed)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "providers",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), server_default="openai", nullable=False),
        sa.Column("api_key_sealed", sa.Text(), nullable=True),
        sa.Column("fee", sa.String(length=32), server_default="0", nullable=False),
        sa.Column("models", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_providers_name")),
    )
    op.create_table(
        "model_settings",
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("price", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("aliases", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_model_settings")),
    )
    # the dashboard's figures (revenue per hour and model) read charges by time
    op.create_index(op.f("ix_ledger_kind_created_at"), "ledger", ["kind", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_kind_created_at"), table_name="ledger")
    op.drop_table("model_settings")
    op.drop_table("providers")
