"""Queries over the store: tree loading, idempotent bulk node inserts, events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Insert,
    Select,
    Table,
    bindparam,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ttc_core.search.tree import NodeView, TreeView
from ttc_core.store.bulk_insert import array_cast, array_values, unnest_insert
from ttc_core.store.models import (
    Base,
    ExpansionBatch,
    ExpansionCacheEntry,
    Job,
    JobEvent,
    Node,
    RequestRecord,
    utcnow,
)

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
    Node.meta["state"].as_string(),
)


def load_tree(session: Session, job_id: str) -> TreeView:
    """The planning view of a job's tree (no node text: strategies plan on scores)."""
    rows = session.execute(select(*_TREE_COLUMNS).where(Node.job_id == job_id)).all()
    return TreeView.build(NodeView(*row) for row in rows)


def load_nodes_since(
    session: Session, job_id: str, after_step: int, up_to_step: int
) -> list[NodeView]:
    """The planning rows of the nodes of a job's batches of steps ``after_step + 1`` to
    ``up_to_step`` (what a kept planning view lacks, ``ttc_core.engine.tree_cache``): the job's
    batches by step, then their nodes by batch."""
    batches = select(ExpansionBatch.id).where(
        ExpansionBatch.job_id == job_id,
        ExpansionBatch.step > after_step,
        ExpansionBatch.step <= up_to_step,
    )
    rows = session.execute(
        select(*_TREE_COLUMNS).where(Node.batch_id.in_(batches), Node.job_id == job_id)
    ).all()
    return [NodeView(*row) for row in rows]


def load_trees(session: Session, job_ids: Sequence[str]) -> dict[str, TreeView]:
    """Planning views of many jobs' trees in one query per chunk of jobs."""
    nodes: dict[str, list[NodeView]] = {job_id: [] for job_id in job_ids}
    ids = list(job_ids)
    for start in range(0, len(ids), 500):
        rows = session.execute(
            select(Node.job_id, *_TREE_COLUMNS).where(Node.job_id.in_(ids[start : start + 500]))
        ).all()
        for job_id, *columns in rows:
            nodes[job_id].append(NodeView(*columns))
    return {job_id: TreeView.build(views) for job_id, views in nodes.items() if views}


def lock_job(session: Session, job_id: str) -> Job | None:
    """Load a job with a row lock (Postgres); SQLite serialises writers anyway."""
    return session.execute(
        select(Job).where(Job.id == job_id).with_for_update()
    ).scalar_one_or_none()


def lock_job_row(session: Session, job_id: str) -> int | None:
    """Take the job's row lock without loading it into the session (the first lock of a
    transaction that writes batches or nodes too: ``ttc_core.engine.claims`` has the order).
    Returns the job's ``tree_epoch`` (None when there is no such job)."""
    epoch = session.scalar(select(Job.tree_epoch).where(Job.id == job_id).with_for_update())
    return None if epoch is None else int(epoch)


def insert_ignoring_duplicates(model: type[Base], dialect: str) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` into ``model``'s table, for ``dialect``."""
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(model).on_conflict_do_nothing()
    return insert(model).prefix_with("IGNORE")


def _insert_all(
    conn: Session | Connection, model: type[Base], rows: Sequence[dict[str, Any]]
) -> None:
    if rows:
        bind = conn.get_bind() if isinstance(conn, Session) else conn
        dialect = bind.dialect
        table = model.__table__
        assert isinstance(table, Table)
        if dialect.name == "postgresql" and unnest_insert(conn, dialect, table, rows):
            return  # one statement over column arrays (``ttc_core.store.bulk_insert``)
        conn.execute(insert_ignoring_duplicates(model, dialect.name), list(rows))


def insert_nodes(conn: Session | Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk insert (one executemany); rows that already exist are left as they are.
    Takes a Session or, on hot paths, a plain Core connection (less overhead)."""
    _insert_all(conn, Node, rows)


def insert_cache_entries(conn: Session | Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Expansion cache entries; one already there (another job's) is left as it is."""
    _insert_all(conn, ExpansionCacheEntry, rows)


def insert_requests(conn: Session | Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Request records (``generation_requests``); one already stored is left as it is."""
    _insert_all(conn, RequestRecord, rows)


_PENDING_EVENTS = "ttc_pending_events"


def append_event(session: Session, job_id: str, kind: str, **data: Any) -> None:
    """Record a progress event; it is written, with the job's next sequence numbers,
    when ``session`` commits.

    ``job_events.id`` cannot order a stream: ids are taken at insert time but become
    visible at commit, so a reader resuming after 41 may see 43 before 42 commits and
    then skip 42 for good. Instead events take ``seq`` from ``jobs.event_seq`` with
    ``UPDATE ... SET event_seq = event_seq + n RETURNING``. That update holds the job's
    row lock until this transaction ends, so a second writer of the same job waits and
    then reads the committed counter: a job's events commit in ``seq`` order, and a
    reader that has seen ``seq`` n has seen every event before it (SQLite serialises
    writers anyway).

    A transaction's events are buffered and written just before it commits: one
    ``UPDATE`` per job and one multi-row ``INSERT`` however many events it has (a tree
    search appends four per depth), and the job's row is locked only at the end.
    """
    pending: list[dict[str, Any]] = session.info.setdefault(_PENDING_EVENTS, [])
    pending.append({"job_id": job_id, "kind": kind, "data": data, "created_at": utcnow()})


@event.listens_for(Session, "before_commit")
def _write_pending_events(session: Session) -> None:
    pending: list[dict[str, Any]] = session.info.pop(_PENDING_EVENTS, [])
    if not pending:
        return
    by_job: dict[str, list[dict[str, Any]]] = {}
    for row in pending:
        by_job.setdefault(row["job_id"], []).append(row)
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        statement, convert = _events_with_seq(dialect)
        for job_id in sorted(by_job):  # one lock order for every writer
            rows = by_job[job_id]
            # The counter and the rows in one statement: one round trip per job.
            params: dict[str, Any] = {"job_id": job_id, "n": len(rows)}
            params.update({name: values([r[name] for r in rows]) for name, values in convert})
            inserted = session.execute(statement, params)
            if getattr(inserted, "rowcount", len(rows)) != len(rows):  # no such job
                raise LookupError(f"job {job_id}: no row to number its events by")
        return
    for job_id in sorted(by_job):  # one lock order for every writer
        rows = by_job[job_id]
        last = session.execute(
            update(Job)
            .where(Job.id == job_id)
            # Keep updated_at: the reaper reads it as "the job's state moved".
            .values(event_seq=Job.event_seq + len(rows), updated_at=Job.updated_at)
            .returning(Job.event_seq)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        for offset, row in enumerate(rows):
            row["seq"] = last - len(rows) + 1 + offset
    session.execute(insert(JobEvent), pending)


_EVENT_COLUMNS = ("kind", "data", "created_at")
_EVENTS_SQL: dict[str, tuple[Any, list[tuple[str, Any]]]] = {}


def _events_with_seq(dialect: Any) -> tuple[Any, list[tuple[str, Any]]]:
    """Postgres: a job's events take their ``seq`` from the counter they advance, in one
    statement (the ``UPDATE`` holds the job's row lock until the transaction ends, as
    above); the array casts and value conversions come from the columns' own types. Built
    once per dialect."""
    built = _EVENTS_SQL.get(dialect.name)
    if built is None:
        columns = [JobEvent.__table__.c[name] for name in _EVENT_COLUMNS]
        statement = text(
            "WITH counter AS (UPDATE jobs SET event_seq = event_seq + :n WHERE id = :job_id "
            "RETURNING event_seq) "
            "INSERT INTO job_events (job_id, kind, data, created_at, seq) "
            "SELECT :job_id, e.kind, e.data, e.created_at, counter.event_seq - :n + e.ord "
            f"FROM counter, unnest({', '.join(array_cast(c, dialect) for c in columns)}) "
            "WITH ORDINALITY AS e(kind, data, created_at, ord)"
        )
        built = (statement, [(c.name, array_values(c, dialect)) for c in columns])
        _EVENTS_SQL[dialect.name] = built
    return built


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending_events(session: Session, previous_transaction: Any) -> None:
    session.info.pop(_PENDING_EVENTS, None)


class PathNode(NamedTuple):
    """What a path above a node tells its children (``expansion.parent_context``)."""

    id: str
    parent_id: str | None
    depth: int
    child_index: int
    role: str
    text: str
    status: str
    meta: dict[str, Any] | None


def _paths_statement() -> Select[Any]:
    """Root-to-node paths of the nodes ``:ids``: built once (Core, no ORM adaptation),
    so a claim pays one round trip and no compilation for it."""
    nodes = Node.__table__
    seed = (
        select(nodes.c.id, nodes.c.parent_id)
        .where(nodes.c.id.in_(bindparam("ids", expanding=True)))
        .cte("ancestors", recursive=True)
    )
    parent = nodes.alias("ancestor")
    ancestors = seed.union(
        select(parent.c.id, parent.c.parent_id).join(seed, parent.c.id == seed.c.parent_id)
    )
    return select(*(nodes.c[name] for name in PathNode._fields)).where(
        nodes.c.id.in_(select(ancestors.c.id))
    )


_PATHS = _paths_statement()


def load_paths(session: Session, node_ids: Sequence[str]) -> dict[str, list[PathNode]]:
    """Root-to-node paths of several nodes, in one recursive query (plain rows, not ORM
    objects: this runs once per depth of every tree search, inside its transaction)."""
    if not node_ids:
        return {}
    rows = session.execute(_PATHS, {"ids": list(node_ids)}).all()
    known = {row.id: PathNode(*row) for row in rows}
    paths: dict[str, list[PathNode]] = {}
    for node_id in node_ids:
        path: list[PathNode] = []
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
