"""Adding what servers were paid to a job's usage columns (and so to its budgets).

Two sources, each counted exactly once:

- the tokens on a batch's nodes, by whoever completes the batch (``ttc_core.engine.batches``) or,
  for a batch that will never complete because its job failed, by :func:`count_abandoned`;
- each expansion attempt's :class:`~ttc_core.inference.ledger.Ledger`: its answered requests and
  the tokens no node carries (judge votes, reward-model calls, requests of a fan-out that
  failed), by the attempt itself when it completes or fails (:func:`add_spend`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ttc_core.inference.ledger import Ledger
from ttc_core.observability import metrics
from ttc_core.settings import EndpointConfig
from ttc_core.store.models import BatchStatus, ExpansionBatch, Job, Node, NodeStatus, utcnow

__all__ = [
    "NodeUsage",
    "Usage",
    "add_spend",
    "cost_of",
    "count_abandoned",
    "node_usage",
    "unstored_usage",
]


@dataclass(frozen=True)
class Usage:
    """An amount to add to a job's usage columns."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    cost: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.prompt_tokens or self.completion_tokens or self.requests or self.cost)


def cost_of(endpoint: EndpointConfig | None, prompt_tokens: int, completion_tokens: int) -> float:
    if endpoint is None:
        return 0.0
    return (
        prompt_tokens * endpoint.price_per_1k_prompt
        + completion_tokens * endpoint.price_per_1k_completion
    ) / 1000


def unstored_usage(
    paid: Ledger, job_endpoint: str, endpoints: Mapping[str, EndpointConfig]
) -> Usage:
    """An attempt's answered requests and the tokens none of its stored nodes carries,
    each endpoint's tokens at that endpoint's price."""
    prompt = completion = 0
    cost = 0.0
    for name, spend in paid.unstored(job_endpoint).items():
        prompt += spend.prompt_tokens
        completion += spend.completion_tokens
        cost += cost_of(endpoints.get(name), spend.prompt_tokens, spend.completion_tokens)
    return Usage(prompt, completion, paid.requests, cost)


@dataclass(frozen=True)
class NodeUsage:
    """What some batches' nodes carry: paid tokens (nodes the server generated), counts,
    and what the expansion cache served (its nodes' tokens, which nobody paid for here)."""

    prompt_tokens: int
    completion_tokens: int
    nodes: int
    failed: int
    thinking_tokens: int
    cache_hits: int
    cache_prompt_tokens: int
    cache_completion_tokens: int


def node_usage(session: Session, batch_ids: list[str]) -> NodeUsage:
    paid = Node.cached.is_(False)
    row = session.execute(
        select(
            func.coalesce(func.sum(Node.prompt_tokens).filter(paid), 0),
            func.coalesce(func.sum(Node.completion_tokens).filter(paid), 0),
            func.count(Node.id),
            func.count(Node.id).filter(Node.status == NodeStatus.failed),
            # Thoughts' tokens (extended thinking), counted apart as well.
            func.coalesce(func.sum(Node.completion_tokens).filter(paid, Node.role == "think"), 0),
            func.count(Node.id).filter(Node.cached.is_(True)),
            func.coalesce(func.sum(Node.prompt_tokens).filter(Node.cached.is_(True)), 0),
            func.coalesce(func.sum(Node.completion_tokens).filter(Node.cached.is_(True)), 0),
        ).where(Node.batch_id.in_(batch_ids))
    ).one()
    return NodeUsage(*(int(value) for value in row))


def add_spend(session: Session, job: Job, usage: Usage) -> None:
    """Add ``usage`` to the job's columns (one UPDATE; the job's row is locked till commit)
    and to the usage metrics when that commits."""
    if not usage:
        return
    metrics.spend(session, job, usage)
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            prompt_tokens=Job.prompt_tokens + usage.prompt_tokens,
            completion_tokens=Job.completion_tokens + usage.completion_tokens,
            requests=Job.requests + usage.requests,
            cost=Job.cost + usage.cost,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )


def count_abandoned(session: Session, job: Job, endpoints: Mapping[str, EndpointConfig]) -> None:
    """For a job that is failing: the nodes of its batches that nobody will complete now
    (pending and not claimed by a live attempt) are counted into its usage, and those
    batches are marked failed so that a late delivery never counts them again. Batches a
    live attempt holds complete by themselves and count their nodes then."""
    now = utcnow()
    abandoned = list(
        session.scalars(
            select(ExpansionBatch.id).where(
                ExpansionBatch.job_id == job.id,
                ExpansionBatch.status == BatchStatus.pending,
                (ExpansionBatch.claimed_until.is_(None)) | (ExpansionBatch.claimed_until < now),
            )
        )
    )
    if not abandoned:
        return
    used = node_usage(session, abandoned)
    session.execute(
        update(ExpansionBatch)
        .where(ExpansionBatch.id.in_(abandoned), ExpansionBatch.status == BatchStatus.pending)
        .values(status=BatchStatus.failed, finished_at=now, claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    endpoint = endpoints.get(job.endpoint)
    job.prompt_tokens += used.prompt_tokens
    job.completion_tokens += used.completion_tokens
    job.thinking_tokens += used.thinking_tokens
    job.node_count += used.nodes
    job.failed_nodes += used.failed
    cost = cost_of(endpoint, used.prompt_tokens, used.completion_tokens)
    job.cost += cost
    job.cache_hits += used.cache_hits
    job.cache_prompt_tokens += used.cache_prompt_tokens
    job.cache_completion_tokens += used.cache_completion_tokens
    job.cache_cost += cost_of(endpoint, used.cache_prompt_tokens, used.cache_completion_tokens)
    metrics.spend(session, job, Usage(used.prompt_tokens, used.completion_tokens, 0, cost))
