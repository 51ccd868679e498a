"""claims on expansion batches

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("expansion_batches") as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index("ix_expansion_batches_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("expansion_batches") as batch_op:
        batch_op.drop_index("ix_expansion_batches_status")
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claim_token")
