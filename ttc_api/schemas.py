"""API schemas (kept apart from the ORM models): JobPublic, JobsPublic, NodePublic..."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ttc_api import examples


class CacheUsage(BaseModel):
    """What the expansion cache served the job instead of a server (not in the tokens,
    requests and cost above, which are what was paid; budgets count both)."""

    hits: int = Field(default=0, description="samples served from the cache")
    requests_saved: int = Field(default=0, description="requests not sent")
    prompt_tokens_saved: int = 0
    completion_tokens_saved: int = 0
    cost_saved: float = 0.0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    requests: int
    cost: float
    thinking_tokens: int = Field(
        default=0, description="tokens generated inside thoughts (part of completion_tokens)"
    )
    cache: CacheUsage = Field(default_factory=CacheUsage)


class Progress(BaseModel):
    step: int
    nodes: int
    failed_nodes: int
    pending_batches: int
    planned_samples: int | None = Field(
        default=None,
        description="the nodes the job can make in all, which `nodes` counts towards: its "
        "strategy's bound (within budget.max_nodes) while it runs, `nodes` once it succeeded",
    )


class JobResult(BaseModel):
    answer: str | None
    text: str | None
    score: float | None
    correct: bool | None = None
    node_id: str | None
    ended_by: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class JobPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.JOB]})

    id: str
    status: str
    strategy: str
    endpoint: str
    prompt: str | None = Field(default=None, description="the problem as submitted")
    messages: list[dict[str, Any]] | None = Field(
        default=None, description="the chat messages as submitted (instead of a prompt)"
    )
    reference: str | None = Field(default=None, description="the reference answer, if given")
    batch_id: str | None = Field(default=None, description="the problem batch it belongs to")
    params: dict[str, Any]
    verifier: dict[str, Any]
    budget: dict[str, Any]
    thinking: dict[str, Any] | None = Field(
        default=None, description="the job's extended-thinking option"
    )
    seed: int
    cache: str = Field(default="off", description="the job's use of the expansion cache")
    model: str | None = Field(
        default=None, description="the model asked for, when not the endpoint's own"
    )
    replay_of: dict[str, Any] | None = Field(
        default=None,
        description="{source_job_id, node_id}: this job replays that job's subtree "
        "(GET /v1/jobs/{id}/replay compares them)",
    )
    root_node_id: str
    progress: Progress
    usage: Usage
    result: JobResult | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class JobsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.JOBS]})

    data: list[JobPublic]
    next_cursor: str | None


class JobAccepted(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.JOB_ACCEPTED]})

    id: str
    status: str
    location: str


class NodePublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.NODE]})

    id: str
    parent_id: str | None
    depth: int
    child_index: int
    role: str
    status: str
    is_terminal: bool
    text: str
    answer: str | None
    score: float | None
    step_score: float | None = Field(
        default=None, description="the step scorer's (PRM) score of this node's own step"
    )
    correct: bool | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    latency_ms: float | None
    seed: int | None
    meta: dict[str, Any]
    request_id: str | None = Field(
        default=None, description="the request that generated it (with seed, reproduces it)"
    )
    cached: bool = Field(default=False, description="served by the expansion cache")
    children: int | None = Field(default=None, description="number of children")
    created_at: dt.datetime


class NodeDetail(NodePublic):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.NODE_DETAIL]})

    path: list[NodePublic] = Field(description="root to this node, inclusive")
    path_text: str = Field(description="the concatenated text of the path below the root")


class NodesPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.NODES]})

    data: list[NodePublic]
    next_cursor: str | None


class EventPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.EVENT]})

    id: int = Field(description="the event's sequence number in its job: 1, 2, 3... no gaps")
    kind: str
    data: dict[str, Any]
    created_at: dt.datetime


class EventsPublic(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.EVENTS]})

    data: list[EventPublic]
    next_cursor: str | None


class ExpandRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.EXPAND_REQUEST]})

    k: int = Field(default=4, ge=1, le=256, description="children to generate")


class PruneResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.PRUNE_RESULT]})

    job: JobPublic
    pruned: int = Field(description="nodes marked pruned (the node and its subtree)")


class DivergencePublic(BaseModel):
    old_node_id: str = Field(description="the first node of the old path that came out otherwise")
    new_node_id: str | None = Field(description="its counterpart in the replay (None: missing)")
    address: str = Field(description="its position: child indices from the root, '0/3/1'")
    depth: int
    reason: str = Field(description="missing, failed, role or text")
    old_text: str | None
    new_text: str | None
    paths: int = Field(description="old paths (root to leaf) whose first divergence it is")


class PathDivergence(BaseModel):
    leaf_node_id: str = Field(description="the old path's last node")
    divergent_node_id: str | None = Field(
        description="the path's first divergent node (old tree); None: reproduced"
    )


class ReplayPublic(BaseModel):
    """How a replay's tree compares with the job it replays, position by position."""

    model_config = ConfigDict(json_schema_extra={"examples": [examples.REPLAY]})

    job_id: str
    source_job_id: str
    node_id: str = Field(description="the replayed node of the source job (its root: all)")
    endpoint: str
    model: str
    status: str = Field(description="the replay job's status (running: still comparing)")
    nodes_compared: int
    nodes_reproduced: int
    paths: int
    paths_reproduced: int
    divergences: list[DivergencePublic]
    path_divergences: list[PathDivergence] = Field(
        description="per old path, its first divergent node (the first 1000 paths)"
    )
