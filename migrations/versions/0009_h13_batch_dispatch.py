"""when an expansion batch's message was last sent (issue 13)

``expansion_batches.enqueued_at``: set when the batch is planned, when its retry is sent
and when the reaper re-sends it; the reaper sends another message only when the last one
is provably lost, never a second copy of one still queued.
``ix_expansion_batches_job_step``: a driver step reads the nodes of the batches planned
since its job's last step (``ttc_core.planning_views``).

Revision ID: 0009_h13_batch_dispatch
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_h13_batch_dispatch"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("expansion_batches") as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_expansion_batches_job_step", ["job_id", "step"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("expansion_batches") as batch_op:
        batch_op.drop_index("ix_expansion_batches_job_step")
        batch_op.drop_column("enqueued_at")
