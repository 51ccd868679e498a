"""planning views kept between driver steps (issue 13)

- ``jobs.tree_epoch``: bumped when an operator changes nodes in place (prune, expand), so
  that a worker's kept planning view of an older epoch is built again from the tree.
- ``ix_expansion_batches_job_step``: the batches of a job's recent steps, whose nodes a
  kept view lacks, found without a scan of all the job's batches.

Revision ID: 0013_tree_epoch
Revises: 0012_expansion_cache
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_tree_epoch"
down_revision: str | None = "0012_expansion_cache"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(
            sa.Column("tree_epoch", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_index(
        "ix_expansion_batches_job_step", "expansion_batches", ["job_id", "step"]
    )


def downgrade() -> None:
    op.drop_index("ix_expansion_batches_job_step", "expansion_batches")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("tree_epoch")
