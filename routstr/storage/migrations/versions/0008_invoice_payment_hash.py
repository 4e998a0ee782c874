"""invoices.payment_hash (read from the bolt11, for Routstr clients and POST /lightning/recover) and
invoices.paid_at; existing invoices get both from what is stored (issue 15)

Revision ID: 0008_ln_hash
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from routstr.core.bolt11 import payment_hash

revision = "0008_ln_hash"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payment_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("paid_at", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_invoices_payment_hash", ["payment_hash"], unique=False)
    invoices = sa.table(
        "invoices",
        sa.column("id", sa.String),
        sa.column("bolt11", sa.Text),
        sa.column("state", sa.String),
        sa.column("updated_at", sa.BigInteger),
        sa.column("payment_hash", sa.String),
        sa.column("paid_at", sa.BigInteger),
    )
    bind = op.get_bind()
    for row in bind.execute(sa.select(invoices.c.id, invoices.c.bolt11)).all():
        try:
            found = payment_hash(row.bolt11)
        except ValueError:
            continue
        bind.execute(sa.update(invoices).where(invoices.c.id == row.id).values(payment_hash=found))
    # a settled invoice's last change was its settlement
    bind.execute(
        sa.update(invoices).where(invoices.c.state == "settled").values(paid_at=invoices.c.updated_at)
    )


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_payment_hash")
        batch_op.drop_column("paid_at")
        batch_op.drop_column("payment_hash")
