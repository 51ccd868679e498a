"""Typed read functions behind the routes (routes stay thin)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from ttc_api.cursors import encode_cursor, read_cursor
from ttc_api.schemas import (
    CacheUsage,
    JobPublic,
    JobResult,
    JobsPublic,
    NodeDetail,
    NodePublic,
    NodesPublic,
    Progress,
    Usage,
)
from ttc_api.storable import scrub
from ttc_core.errors import InputError, NotFoundError
from ttc_core.search.tree import node_id_for
from ttc_core.service.progress import planned_nodes
from ttc_core.store.models import Job, Node, NodeStatus
from ttc_core.store.queries import path_text


def get_job(session: Session, job_id: str, *, tenant: str | None) -> Job:
    job = session.get(Job, job_id)
    if job is None or (tenant is not None and job.tenant != tenant):
        raise NotFoundError(f"no job {job_id}")
    return job


def _replay_of(job: Job) -> dict[str, Any] | None:
    if not job.replay:
        return None
    return {k: job.replay.get(k) for k in ("source_job_id", "node_id")}


def job_public(job: Job) -> JobPublic:
    """The job as the API shows it. Stored text is scrubbed (:func:`scrub`): a row
    holding what cannot be encoded shows U+FFFD instead of failing every list."""
    planned = planned_nodes(job)
    return JobPublic(
        id=job.id,
        status=job.status,
        strategy=job.strategy,
        endpoint=job.endpoint,
        prompt=scrub(job.prompt),
        messages=scrub(job.messages),
        reference=scrub(job.reference),
        batch_id=job.batch_id,
        params=scrub(job.params),
        verifier=scrub(job.verifier),
        budget=scrub(job.budget),
        thinking=scrub(job.thinking),
        seed=job.seed,
        cache=job.cache or "off",
        model=job.model,
        replay_of=_replay_of(job),
        root_node_id=node_id_for(job.id, None, 0),
        progress=Progress(
            step=job.step,
            nodes=job.node_count,
            failed_nodes=job.failed_nodes,
            pending_batches=job.pending_batches,
            planned_samples=planned,
        ),
        usage=Usage(
            prompt_tokens=job.prompt_tokens,
            completion_tokens=job.completion_tokens,
            total_tokens=job.prompt_tokens + job.completion_tokens,
            requests=job.requests,
            cost=round(job.cost, 8),
            thinking_tokens=job.thinking_tokens or 0,
            cache=CacheUsage(
                hits=job.cache_hits or 0,
                requests_saved=job.cache_requests or 0,
                prompt_tokens_saved=job.cache_prompt_tokens or 0,
                completion_tokens_saved=job.cache_completion_tokens or 0,
                cost_saved=round(job.cache_cost or 0.0, 8),
            ),
        ),
        result=JobResult.model_validate(scrub(job.result)) if job.result else None,
        error=scrub(job.error),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def list_jobs(
    session: Session,
    *,
    tenant: str | None,
    cursor: str | None,
    limit: int,
    status: str | None = None,
    strategy: str | None = None,
    batch_id: str | None = None,
) -> JobsPublic:
    """Newest first, keyset-paged on ``(created_at, id)``."""
    query = select(Job)
    if batch_id is not None:
        query = query.where(Job.batch_id == batch_id)
    if tenant is not None:
        query = query.where(Job.tenant == tenant)
    if status is not None:
        query = query.where(Job.status == status)
    if strategy is not None:
        query = query.where(Job.strategy == strategy)
    if cursor:
        created_at, job_id = read_cursor(cursor, "datetime", "str")
        query = query.where(
            or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < job_id))
        )
    rows = list(
        session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1))
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id) if more else None
    return JobsPublic(data=[job_public(j) for j in rows], next_cursor=next_cursor)


def _node_public(node: Node, children: int | None = None) -> NodePublic:
    return NodePublic.model_validate(
        scrub(
            {
                **{c: getattr(node, c) for c in NodePublic.model_fields if hasattr(node, c)},
                "children": children,
            }
        )
    )


NO_NUL = r"^[^\x00]*$"
"""A pattern for text query parameters: Postgres text cannot hold NUL, so such input is
refused as a 422 instead of failing in the database."""

NodeStatusFilter = Literal["pending", "done", "pruned", "failed"]
"""The node statuses a listing filters by (``pending`` is a generated node not scored
yet). Whether a node ends a path is ``is_terminal``, not a status."""


@dataclass(frozen=True)
class NodeFilter:
    """Optional row filters for node listings, combined with AND (the tree inspector's
    search). Each is a plain column predicate, so a filtered page stays one query."""

    status: NodeStatusFilter | None = None
    is_terminal: bool | None = None
    min_score: float | None = None
    max_score: float | None = None
    text: str | None = None

    def apply(self, query: Select[Node]) -> Select[Node]:
        low, high = self.min_score, self.max_score
        if low is not None and high is not None and low > high:
            raise InputError("min_score is above max_score", field="min_score")
        if self.is_terminal is not None:
            query = query.where(Node.is_terminal.is_(self.is_terminal))
        if self.status == "pending":
            query = query.where(Node.status == NodeStatus.generated)
        elif self.status is not None:
            query = query.where(Node.status == self.status)
        if self.min_score is not None:
            query = query.where(Node.score >= self.min_score)
        if self.max_score is not None:
            query = query.where(Node.score <= self.max_score)
        if self.text:
            escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(Node.text.ilike(f"%{escaped}%", escape="\\"))
        return query


def _subtree_ids(job: Job, node_id: str) -> Select[str]:
    """Ids of a node and everything below it (one recursive query, on the child index)."""
    below = (
        select(Node.id)
        .where(Node.job_id == job.id, Node.id == node_id)
        .cte("below", recursive=True)
    )
    child = aliased(Node)
    below = below.union_all(
        select(child.id).join(below, child.parent_id == below.c.id).where(child.job_id == job.id)
    )
    return select(below.c.id)


def list_nodes(
    session: Session,
    job: Job,
    *,
    parent_id: str | None,
    cursor: str | None,
    limit: int,
    filters: NodeFilter | None = None,
    under: str | None = None,
) -> NodesPublic:
    """Children of ``parent_id`` in child order, or breadth-first: the subtree ``under``
    a node, or the whole tree (cursor-paged either way), optionally filtered."""
    query = select(Node).where(Node.job_id == job.id)
    if parent_id is not None:
        query = query.where(Node.parent_id == parent_id)
        if cursor:
            (after,) = read_cursor(cursor, "int")
            query = query.where(Node.child_index > after)
        query = query.order_by(Node.child_index)
    else:
        if under is not None:
            top = session.get(Node, under)
            if top is None or top.job_id != job.id:
                raise NotFoundError(f"no node {under} in job {job.id}")
            if top.parent_id is not None:  # under the root: the whole tree, no recursion
                query = query.where(Node.id.in_(_subtree_ids(job, under)))
        if cursor:
            depth, node_id = read_cursor(cursor, "int", "str")
            query = query.where(tuple_(Node.depth, Node.id) > tuple_(depth, node_id))
        query = query.order_by(Node.depth, Node.id)
    if filters is not None:
        query = filters.apply(query)
    rows = list(session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    counts = dict(
        session.execute(
            select(Node.parent_id, func.count(Node.id))
            .where(Node.job_id == job.id, Node.parent_id.in_([n.id for n in rows]))
            .group_by(Node.parent_id)
        ).all()
    )
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = (
            encode_cursor(last.child_index) if parent_id else encode_cursor(last.depth, last.id)
        )
    return NodesPublic(
        data=[_node_public(n, counts.get(n.id, 0)) for n in rows], next_cursor=next_cursor
    )


def node_detail(session: Session, job: Job, node_id: str) -> NodeDetail:
    node = session.get(Node, node_id)
    if node is None or node.job_id != job.id:
        raise NotFoundError(f"no node {node_id} in job {job.id}")
    path = path_text(session, node_id)
    children = session.scalar(
        select(func.count(Node.id)).where(Node.job_id == job.id, Node.parent_id == node.id)
    )
    public = _node_public(node, children)
    return NodeDetail(
        **public.model_dump(),
        path=[_node_public(n) for n in path],
        path_text=scrub("".join(n.text for n in path if n.parent_id is not None)),
    )
