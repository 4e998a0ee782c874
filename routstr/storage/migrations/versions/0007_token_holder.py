"""a redeemed token's holder mark (issue 14): the HMAC of its DLEQ blinding factors

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("swaps") as batch:
        batch.add_column(sa.Column("holder_mark", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("swaps") as batch:
        batch.drop_column("holder_mark")
