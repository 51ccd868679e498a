"""Tree routes: page through a job's nodes; one node with its full path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ttc_api.deps import SessionDep, TenantDep
from ttc_api.problems import PROBLEM_RESPONSES
from ttc_api.schemas import NodeDetail, NodesPublic
from ttc_api.services import get_job, list_nodes, node_detail

router = APIRouter(prefix="/v1/jobs/{job_id}/nodes", tags=["nodes"], responses=PROBLEM_RESPONSES)


@router.get("", response_model=NodesPublic)
def read_nodes(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    parent_id: Annotated[str | None, Query(description="only children of this node")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> NodesPublic:
    """Nodes of a job, cursor-paged: children of ``parent_id``, or all breadth-first."""
    job = get_job(session, job_id, tenant=tenant)
    return list_nodes(session, job, parent_id=parent_id, cursor=cursor, limit=limit)


@router.get("/{node_id}", response_model=NodeDetail)
def read_node(job_id: str, node_id: str, session: SessionDep, tenant: TenantDep) -> NodeDetail:
    """One node with its path from the root and the full path text."""
    job = get_job(session, job_id, tenant=tenant)
    return node_detail(session, job, node_id)
