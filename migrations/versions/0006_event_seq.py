"""per-job event sequence for SSE (issue 5)

``job_events.id`` is a global autoincrement: concurrent transactions take ids in one order
and commit in another, so a reader resuming "after id 41" can see 43 before 42 commits
and skip 42 for good. ``jobs.event_seq`` is a per-job counter bumped under the job's row
lock by every event insert (``ttc_core.store.queries.append_event``); ``job_events.seq`` stores
it, so a job's events commit in ``seq`` order and ``seq`` is the SSE id and the polling
cursor. Existing events are numbered 1, 2, ... per job in id order.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL_POSTGRES = """
UPDATE job_events AS e SET seq = numbered.n
FROM (
    SELECT id, row_number() OVER (PARTITION BY job_id ORDER BY id) AS n FROM job_events
) AS numbered
WHERE e.id = numbered.id
"""

# Portable form (SQLite): a correlated count, fine for embedded-mode volumes.
_BACKFILL_GENERIC = """
UPDATE job_events SET seq = (
    SELECT count(*) FROM job_events AS earlier
    WHERE earlier.job_id = job_events.job_id AND earlier.id <= job_events.id
)
"""

_COUNTERS = """
UPDATE jobs SET event_seq = coalesce(
    (SELECT max(seq) FROM job_events WHERE job_events.job_id = jobs.id), 0
)
"""


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(
            sa.Column("event_seq", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("job_events") as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
    dialect = op.get_bind().dialect.name
    op.execute(_BACKFILL_POSTGRES if dialect == "postgresql" else _BACKFILL_GENERIC)
    op.execute(_COUNTERS)
    with op.batch_alter_table("job_events") as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index("uq_job_events_job_seq", ["job_id", "seq"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("job_events") as batch_op:
        batch_op.drop_index("uq_job_events_job_seq")
        batch_op.drop_column("seq")
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("event_seq")
