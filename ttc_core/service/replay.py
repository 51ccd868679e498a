"""Replay: re-run a finished job, or the subtree under one of its nodes, against the same
or another endpoint (or model) as a new job, and say where the new tree diverges.

Every node keeps what reproduces it: its seed and its request (``nodes.request_id`` ->
``generation_requests``: endpoint, model and the request as sent, stored once per
distinct request of a job). A replay job copies the path above the replayed node (not
regenerated), then regenerates every old node under it at its old position with its old
seed, role and temperature (``ttc_core.engine.replay_plan``), on the endpoint and model asked
for. It never reads the expansion cache: it checks the server, not the cache.

:func:`replay_report` compares the two trees position by position: per path of the old
subtree (root of the replay down to each leaf), the first node whose new counterpart is
missing, failed, or says something else. On a deterministic server and the same model
every node is reproduced; on another model the report names where each path parted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session

from ttc_core.errors import ConflictError, InputError
from ttc_core.search.tree import node_id_for
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import Settings
from ttc_core.store.expansion_cache import CacheMode
from ttc_core.store.models import TERMINAL_STATUSES, Job, Node, NodeStatus
from ttc_core.store.queries import path_text
from ttc_core.store.tree_positions import Address, Positioned, children_of, format_address
from ttc_core.store.tree_positions import positioned_nodes as _positioned

__all__ = ["ReplayReport", "ReplaySpec", "create_replay", "replay_report"]

#: Characters of a node's text shown in a divergence.
TEXT_SHOWN = 400
#: Paths listed one by one in a report (a big tree has many; the counts cover all).
MAX_PATHS_LISTED = 1000


class ReplaySpec(BaseModel):
    """``POST /v1/jobs/{id}/replay``: what to replay, against what."""

    model_config = ConfigDict(extra="forbid")

    node_id: str | None = Field(
        default=None,
        max_length=36,
        description="replay the subtree under this node of the job (default: the whole job)",
    )
    endpoint: str | None = Field(
        default=None,
        max_length=128,
        description="an endpoint named in TTC_ENDPOINTS (default: the job's)",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="another model on that endpoint's servers (default: the endpoint's)",
    )


def create_replay(
    session: Session, source: Job, spec: ReplaySpec, settings: Settings, *, admin: bool = False
) -> Job:
    """Write the replay job (validated like a submission), its root and the copied path
    above the replayed node; the caller commits and dispatches it."""
    if source.status not in TERMINAL_STATUSES:
        raise ConflictError(
            f"job {source.id} is {source.status}: only a finished job can be replayed"
        )
    root_id = node_id_for(source.id, None, 0)
    node = (
        session.get(Node, spec.node_id) if spec.node_id is not None else session.get(Node, root_id)
    )
    if node is None or node.job_id != source.id:
        raise InputError(f"job {source.id} has no node {spec.node_id}", field="node_id")
    endpoint = spec.endpoint or source.endpoint
    model = spec.model
    if model is None and endpoint == source.endpoint:
        model = source.model
    try:
        job_spec = JobSpec.model_validate(
            {
                "strategy": source.strategy,
                "endpoint": endpoint,
                "prompt": source.prompt,
                "messages": source.messages,
                "params": source.params,
                "verifier": source.verifier,
                "prm": source.prm,
                "reference": source.reference,
                "budget": source.budget,
                "seed": source.seed,
                "thinking": source.thinking,
                "cache": CacheMode.refresh,
            }
        )
    except ValidationError as exc:  # a row older than a check of today's submissions
        reason = exc.errors()[0]["msg"]
        raise ConflictError(f"job {source.id} cannot be replayed: {reason}") from None
    job = create_job(session, job_spec, settings, tenant=source.tenant, admin=admin)
    path = path_text(session, node.id)
    job.model = model
    job.replay = {
        "source_job_id": source.id,
        "node_id": node.id,
        "address": [n.child_index for n in path[1:]],
    }
    parent_id = node_id_for(job.id, None, 0)
    for above in path[1:-1]:  # the path above the replayed node, as it was
        copy_id = node_id_for(job.id, parent_id, above.child_index)
        session.add(
            Node(
                id=copy_id,
                job_id=job.id,
                parent_id=parent_id,
                depth=above.depth,
                child_index=above.child_index,
                role=above.role,
                text=above.text,
                status=NodeStatus.done,
                is_terminal=above.is_terminal,
                answer=above.answer,
                score=above.score,
                step_score=above.step_score,
                correct=above.correct,
                prompt_tokens=above.prompt_tokens,
                completion_tokens=above.completion_tokens,
                finish_reason=above.finish_reason,
                latency_ms=above.latency_ms,
                seed=above.seed,
                meta={**(above.meta or {}), "copied_from": above.id},
                request_id=None,
            )
        )
        parent_id = copy_id
    return job


@dataclass
class Divergence:
    """The first node of one or more old paths whose new counterpart differs."""

    old_node_id: str
    new_node_id: str | None
    address: str
    depth: int
    #: ``missing`` (not generated), ``failed`` (its generation failed), ``role`` or
    #: ``text`` (generated, and different).
    reason: str
    old_text: str | None
    new_text: str | None
    #: Old paths (to a leaf) that part here.
    paths: int = 0


@dataclass
class ReplayReport:
    job_id: str
    source_job_id: str
    node_id: str
    endpoint: str
    model: str | None
    status: str
    #: Old nodes at and under the replayed node, and how many came out the same.
    nodes_compared: int
    nodes_reproduced: int
    #: Old paths from the replayed node to each leaf, and how many came out whole.
    paths: int
    paths_reproduced: int
    divergences: list[Divergence] = field(default_factory=list)
    #: ``{"leaf_node_id", "divergent_node_id"}`` per old path (None: reproduced), the
    #: first :data:`MAX_PATHS_LISTED`.
    path_divergences: list[dict[str, Any]] = field(default_factory=list)


def _difference(old: Positioned, new: Positioned | None) -> str | None:
    if new is None:
        return "missing"
    if new.status == NodeStatus.failed and old.status != NodeStatus.failed:
        return "failed"
    if new.role != old.role:
        return "role"
    if (new.text or "") != (old.text or ""):
        return "text"
    return None


def _shown(text: str | None) -> str | None:
    return None if text is None else text[:TEXT_SHOWN]


def replay_report(session: Session, job: Job) -> ReplayReport:
    """Where ``job`` (a replay) diverges from the job it replays (see the module
    docstring). While the replay runs, nodes not generated yet count as ``missing``."""
    replay = job.replay or {}
    source_id = str(replay.get("source_job_id"))
    replayed: Address = tuple(int(i) for i in replay.get("address") or ())
    old = _positioned(session, source_id, with_text=True)
    new = _positioned(session, job.id, with_text=True)
    region = {a: n for a, n in old.items() if a[: len(replayed)] == replayed}
    old_children = children_of(region)
    differs = {a: _difference(n, new.get(a)) for a, n in region.items()}
    leaves = sorted(a for a in region if not old_children.get(a))
    divergences: dict[Address, Divergence] = {}
    listed: list[dict[str, Any]] = []
    reproduced_paths = 0
    for leaf in leaves:
        first = next(
            (
                leaf[:depth]
                for depth in range(len(replayed), len(leaf) + 1)
                if differs.get(leaf[:depth])
            ),
            None,
        )
        if first is None:
            reproduced_paths += 1
        else:
            if first not in divergences:
                o, n = region[first], new.get(first)
                divergences[first] = Divergence(
                    old_node_id=o.id,
                    new_node_id=n.id if n is not None else None,
                    address=format_address(first),
                    depth=o.depth,
                    reason=str(differs[first]),
                    old_text=_shown(o.text),
                    new_text=_shown(n.text) if n is not None else None,
                )
            divergences[first].paths += 1
        if len(listed) < MAX_PATHS_LISTED:
            listed.append(
                {
                    "leaf_node_id": region[leaf].id,
                    "divergent_node_id": None if first is None else region[first].id,
                }
            )
    return ReplayReport(
        job_id=job.id,
        source_job_id=source_id,
        node_id=str(replay.get("node_id")),
        endpoint=job.endpoint,
        model=job.model,
        status=job.status,
        nodes_compared=len(region),
        nodes_reproduced=sum(1 for d in differs.values() if d is None),
        paths=len(leaves),
        paths_reproduced=reproduced_paths,
        divergences=[divergences[a] for a in sorted(divergences)],
        path_divergences=listed,
    )
