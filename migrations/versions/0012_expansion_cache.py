"""expansion cache across jobs, and what reproduces each node (issue 17)

- ``expansion_cache``: generated samples, content-addressed by (endpoint, model, request,
  seed), per scope (a tenant, or ``*`` when shared); evicted by age and size.
- ``generation_requests``: each distinct request of a job (but ``n`` and ``seed``), once;
  ``nodes.request_id`` references it and ``nodes.cached`` marks a sample the cache served.
- ``jobs``: the cache mode, what the cache saved, the model override and the replay source.

Revision ID: 0012_expansion_cache
Revises: 0011_evals
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_expansion_cache"
down_revision: str | None = "0011_evals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "expansion_cache",
        sa.Column("scope", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("notes", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_expansion_cache_used_at", "expansion_cache", ["used_at"])
    op.create_table(
        "generation_requests",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("endpoint", sa.String(128), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_generation_requests_job_id", "generation_requests", ["job_id"])
    with op.batch_alter_table("nodes") as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(64), nullable=True))
        batch_op.add_column(
            sa.Column("cached", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("model", sa.String(256), nullable=True))
        batch_op.add_column(
            sa.Column("cache", sa.String(16), nullable=False, server_default="off")
        )
        for name in ("cache_hits", "cache_requests", "cache_prompt_tokens"):
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), nullable=False, server_default="0")
            )
        batch_op.add_column(
            sa.Column(
                "cache_completion_tokens", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
        batch_op.add_column(sa.Column("cache_cost", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("replay", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        for name in (
            "replay",
            "cache_cost",
            "cache_completion_tokens",
            "cache_prompt_tokens",
            "cache_requests",
            "cache_hits",
            "cache",
            "model",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("nodes") as batch_op:
        batch_op.drop_column("cached")
        batch_op.drop_column("request_id")
    op.drop_index("ix_generation_requests_job_id", "generation_requests")
    op.drop_table("generation_requests")
    op.drop_index("ix_expansion_cache_used_at", "expansion_cache")
    op.drop_table("expansion_cache")
