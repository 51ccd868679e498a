"""Read a job's tree straight from the store for the terminal."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ttc_cli.render import TreeRow
from ttc_core.store.models import Job, Node


def tree_rows(session: Session, job: Job) -> list[TreeRow]:
    """Nodes below the root in depth-first order."""
    nodes = list(session.scalars(select(Node).where(Node.job_id == job.id)))
    children: dict[str | None, list[Node]] = {}
    for node in nodes:
        children.setdefault(node.parent_id, []).append(node)
    for siblings in children.values():
        siblings.sort(key=lambda n: n.child_index)
    chosen = (job.result or {}).get("node_id")
    by_id = {node.id: node for node in nodes}
    path: set[str] = set()
    cursor = by_id.get(chosen) if chosen else None
    while cursor is not None and cursor.parent_id is not None:
        path.add(cursor.parent_id)
        cursor = by_id.get(cursor.parent_id)
    rows: list[TreeRow] = []
    roots = children.get(None, [])
    stack = [c for r in roots for c in reversed(children.get(r.id, []))]
    while stack:
        node = stack.pop()
        rows.append(
            TreeRow(
                depth=node.depth,
                child_index=node.child_index,
                status=node.status,
                answer=node.answer,
                score=node.score,
                correct=node.correct,
                completion_tokens=node.completion_tokens,
                chosen=node.id == chosen,
                on_path=node.id in path,
            )
        )
        stack.extend(reversed(children.get(node.id, [])))
    return rows
