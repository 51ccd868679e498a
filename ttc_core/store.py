"""Queries over the store: tree loading, idempotent bulk node inserts, events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Insert, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from ttc_core.models import Job, JobEvent, Node
from ttc_core.tree import NodeView, TreeView

_TREE_COLUMNS = (
    Node.id,
    Node.parent_id,
    Node.depth,
    Node.child_index,
    Node.role,
    Node.status,
    Node.is_terminal,
    Node.answer,
    Node.score,
    Node.correct,
    Node.completion_tokens,
)


def load_tree(session: Session, job_id: str) -> TreeView:
    """The planning view of a job's tree (no node text: strategies plan on scores)."""
    rows = session.execute(select(*_TREE_COLUMNS).where(Node.job_id == job_id)).all()
    return TreeView.build(NodeView(*row) for row in rows)


def lock_job(session: Session, job_id: str) -> Job | None:
    """Load a job with a row lock (Postgres); SQLite serialises writers anyway."""
    return session.execute(
        select(Job).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()


def _insert_ignoring_duplicates(dialect: str) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(Node).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(Node).on_conflict_do_nothing()
    return insert(Node).prefix_with("IGNORE")


def insert_nodes(conn: Session | Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk insert (one executemany); rows that already exist are left as they are.
    Takes a Session or, on hot paths, a plain Core connection (less overhead)."""
    if rows:
        bind = conn.get_bind() if isinstance(conn, Session) else conn
        conn.execute(_insert_ignoring_duplicates(bind.dialect.name), list(rows))


def append_event(session: Session, job_id: str, kind: str, **data: Any) -> None:
    session.add(JobEvent(job_id=job_id, kind=kind, data=data))


def load_paths(session: Session, node_ids: Sequence[str]) -> dict[str, list[Node]]:
    """Root-to-node paths of several nodes, in one recursive query."""
    if not node_ids:
        return {}
    seed = (
        select(Node.id, Node.parent_id)
        .where(Node.id.in_(list(node_ids)))
        .cte("ancestors", recursive=True)
    )
    parent = aliased(Node)
    ancestors = seed.union(
        select(parent.id, parent.parent_id).join(seed, parent.id == seed.c.parent_id)
    )
    rows = session.scalars(select(Node).where(Node.id.in_(select(ancestors.c.id)))).all()
    known = {node.id: node for node in rows}
    paths: dict[str, list[Node]] = {}
    for node_id in node_ids:
        path: list[Node] = []
        current = known.get(node_id)
        while current is not None:
            path.append(current)
            current = known.get(current.parent_id) if current.parent_id else None
        path.reverse()
        paths[node_id] = path
    return paths


def path_text(session: Session, node_id: str) -> list[Node]:
    """The nodes from the root down to ``node_id`` (inclusive)."""
    path: list[Node] = []
    current = session.get(Node, node_id)
    while current is not None:
        path.append(current)
        current = session.get(Node, current.parent_id) if current.parent_id else None
    path.reverse()
    return path
