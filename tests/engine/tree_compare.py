"""Trees of two jobs side by side: nodes by position (child indices from the root),
since node ids are derived from the job id and differ between any two jobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ttc_core.store.models import Job, Node


def tree_by_position(ctx: Any, job_id: str) -> dict[str, tuple[Any, ...]]:
    """``address -> (role, text, answer, score, correct, seed, status, is_terminal)``."""
    with ctx.db.session() as session:
        nodes = session.scalars(select(Node).where(Node.job_id == job_id)).all()
    by_id = {n.id: n for n in nodes}

    def address(node: Node) -> str:
        parts: list[str] = []
        while node.parent_id is not None:
            parts.append(str(node.child_index))
            node = by_id[node.parent_id]
        return "/".join(reversed(parts))

    return {
        address(n): (
            n.role,
            n.text,
            n.answer,
            n.score,
            n.correct,
            n.seed,
            n.status,
            n.is_terminal,
        )
        for n in nodes
    }


def job_of(ctx: Any, job_id: str) -> Job:
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job
