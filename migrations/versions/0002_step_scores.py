"""step scorer on jobs, step scores on nodes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("prm", sa.JSON(), nullable=True))
    with op.batch_alter_table("nodes") as batch_op:
        batch_op.add_column(sa.Column("step_score", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch_op:
        batch_op.drop_column("step_score")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("prm")
