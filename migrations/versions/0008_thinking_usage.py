"""thinking tokens counted separately in usage (issue 7)

``jobs.thinking``: the job's extended-thinking option (effort, budget, forcing bounds);
``jobs.thinking_tokens``: tokens generated inside thinking blocks, a part of
``completion_tokens``. A node's own thinking tokens are its ``completion_tokens`` when its
role is ``think`` (and ``meta.thinking_tokens`` on the answer below it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("thinking", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("thinking_tokens", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("thinking_tokens")
        batch.drop_column("thinking")
