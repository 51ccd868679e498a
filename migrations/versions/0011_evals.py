"""evaluations: datasets, and problem_batches.kind for eval runs (issue 15)

Revision ID: 0011_evals
Revises: 0010_batch_dispatch
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_evals"
down_revision: str | None = "0010_batch_dispatch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("problem_batches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="allocation")
        )
        batch_op.create_index(
            "ix_problem_batches_kind_tenant_created",
            ["kind", "tenant", "created_at", "id"],
            unique=False,
        )
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_datasets_tenant_created", ["tenant", "created_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index("ix_datasets_tenant_created")
    op.drop_table("datasets")
    with op.batch_alter_table("problem_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_problem_batches_kind_tenant_created")
        batch_op.drop_column("kind")
