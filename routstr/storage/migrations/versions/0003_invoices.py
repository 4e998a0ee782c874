"""invoices: Lightning top-ups through the primary mint's NUT-04 quotes; proofs indexed for spending;
key expiry and refund address; admin API tokens; job leases; swaps.executor

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("swaps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("executor", sa.String(length=64), nullable=True))
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "admin_tokens",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_admin_tokens_token_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_address", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("quote_id", sa.Text(), nullable=False),
        sa.Column("mint_url", sa.Text(), nullable=False),
        sa.Column("unit", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("bolt11", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=8), nullable=False),
        sa.Column("key_id", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("swap_id", sa.String(length=32), nullable=True),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name=op.f("fk_invoices_key_id")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("quote_id", name=op.f("uq_invoices_quote_id")),
        sa.UniqueConstraint("swap_id", name=op.f("uq_invoices_swap_id")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index("ix_invoices_state", ["state"], unique=False)
    with op.batch_alter_table("proofs", schema=None) as batch_op:
        batch_op.create_index("ix_proofs_spent_by", ["spent_by"], unique=False)
        # spending picks proofs by amount: the amount joins the wallet index
        batch_op.drop_index("ix_proofs_mint_state")
        batch_op.create_index(
            "ix_proofs_mint_state_amount", ["mint_url", "unit", "state", "amount"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("swaps", schema=None) as batch_op:
        batch_op.drop_column("executor")
    op.drop_table("leases")
    op.drop_table("admin_tokens")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("refund_address")
    with op.batch_alter_table("proofs", schema=None) as batch_op:
        batch_op.drop_index("ix_proofs_mint_state_amount")
        batch_op.create_index("ix_proofs_mint_state", ["mint_url", "unit", "state"], unique=False)
        batch_op.drop_index("ix_proofs_spent_by")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_state")
    op.drop_table("invoices")
