"""invoices.api_key_sealed: the key a top-up invoice was made with, sealed (routstr/core/sealed.py),
so that its paid status can hand it back as routstr-sdk requires (issue 15). Existing invoices have
none: their status stays without ``api_key``.

Revision ID: 0011_invoice_sealed_key
Revises: 0010_child_keys
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_invoice_sealed_key"
down_revision = "0010_child_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("api_key_sealed", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("api_key_sealed")
