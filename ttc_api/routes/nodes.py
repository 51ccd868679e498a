"""Tree routes: page through a job's nodes; one node with its full path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ttc_api.deps import DatabaseDep, DispatcherDep, SessionDep, TenantDep
from ttc_api.problems import PROBLEM_RESPONSES, STATE_PROBLEM_RESPONSES
from ttc_api.schemas import ExpandRequest, JobPublic, NodeDetail, NodesPublic, PruneResult
from ttc_api.services import (
    NO_NUL,
    NodeFilter,
    NodeStatusFilter,
    get_job,
    job_public,
    list_nodes,
    node_detail,
)
from ttc_core.engine.control import expand_node, prune_node
from ttc_core.errors import InputError

router = APIRouter(prefix="/v1/jobs/{job_id}/nodes", tags=["nodes"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=NodesPublic)
def read_nodes(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    parent_id: Annotated[
        str | None, Query(pattern=NO_NUL, description="only children of this node")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    under: Annotated[
        str | None,
        Query(pattern=NO_NUL, description="only this node and its descendants, breadth-first"),
    ] = None,
    status: Annotated[
        NodeStatusFilter | None,
        Query(description="pending (generated, not scored yet), done, pruned or failed"),
    ] = None,
    is_terminal: Annotated[
        bool | None, Query(description="only nodes that end a path (true) or that don't")
    ] = None,
    min_score: Annotated[
        float | None, Query(allow_inf_nan=False, description="score >= this")
    ] = None,
    max_score: Annotated[
        float | None, Query(allow_inf_nan=False, description="score <= this")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=200, pattern=NO_NUL, description="step text contains")
    ] = None,
) -> NodesPublic:
    """Nodes of a job, cursor-paged: children of ``parent_id``, or breadth-first (the
    subtree ``under`` a node, or all), optionally filtered by status, terminality, score
    or text."""
    if parent_id is not None and under is not None:
        raise InputError("give parent_id or under, not both", field="under")
    job = get_job(session, job_id, tenant=tenant)
    filters = NodeFilter(
        status=status, is_terminal=is_terminal, min_score=min_score, max_score=max_score, text=q
    )
    return list_nodes(
        session, job, parent_id=parent_id, cursor=cursor, limit=limit, filters=filters, under=under
    )


@router.get("/{node_id}", response_model=NodeDetail)
def read_node(job_id: str, node_id: str, session: SessionDep, tenant: TenantDep) -> NodeDetail:
    """One node with its path from the root and the full path text."""
    job = get_job(session, job_id, tenant=tenant)
    return node_detail(session, job, node_id)


@router.post("/{node_id}/prune", response_model=PruneResult, responses=STATE_PROBLEM_RESPONSES)
def prune(job_id: str, node_id: str, db: DatabaseDep, tenant: TenantDep) -> PruneResult:
    """Cut a subtree: never expanded again; in-flight results under it land pruned."""
    with db.transaction() as session:
        job, count = prune_node(session, job_id, node_id, tenant=tenant)
        return PruneResult(job=job_public(job), pruned=count)


@router.post(
    "/{node_id}/expand",
    response_model=JobPublic,
    status_code=202,
    responses=STATE_PROBLEM_RESPONSES,
)
def expand(
    job_id: str,
    node_id: str,
    body: ExpandRequest,
    db: DatabaseDep,
    tenant: TenantDep,
    dispatcher: DispatcherDep,
) -> JobPublic:
    """Generate k more children of a node now (re-opens a pruned node)."""
    with db.transaction() as session:
        job, followups = expand_node(session, job_id, node_id, body.k, tenant=tenant)
        public = job_public(job)
    dispatcher.dispatch(followups)
    return public
