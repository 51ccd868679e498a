"""API schemas (kept apart from the ORM models): JobPublic, JobsPublic, NodePublic..."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    requests: int
    cost: float


class Progress(BaseModel):
    step: int
    nodes: int
    failed_nodes: int
    pending_batches: int
    planned_samples: int | None = Field(
        default=None, description="samples the strategy plans in all (flat strategies)"
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
    id: str
    status: str
    strategy: str
    endpoint: str
    params: dict[str, Any]
    verifier: dict[str, Any]
    budget: dict[str, Any]
    seed: int
    root_node_id: str
    progress: Progress
    usage: Usage
    result: JobResult | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class JobsPublic(BaseModel):
    data: list[JobPublic]
    next_cursor: str | None


class JobAccepted(BaseModel):
    id: str
    status: str
    location: str


class NodePublic(BaseModel):
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
    correct: bool | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    latency_ms: float | None
    seed: int | None
    meta: dict[str, Any]
    children: int | None = Field(default=None, description="number of children")
    created_at: dt.datetime


class NodeDetail(NodePublic):
    path: list[NodePublic] = Field(description="root to this node, inclusive")
    path_text: str = Field(description="the concatenated text of the path below the root")


class NodesPublic(BaseModel):
    data: list[NodePublic]
    next_cursor: str | None


class EventPublic(BaseModel):
    id: int
    kind: str
    data: dict[str, Any]
    created_at: dt.datetime


class EventsPublic(BaseModel):
    data: list[EventPublic]
    next_cursor: str | None
