"""Adding what servers were paid to a job's usage columns (and so to its budgets).

Two sources, each counted exactly once:

- the tokens on a batch's nodes, by whoever completes the batch (``ttc_core.batches``) or,
  for a batch that will never complete because its job failed, by :func:`count_abandoned`;
- each expansion attempt's :class:`~ttc_core.ledger.Ledger`: its answered requests and
  the tokens no node carries (judge votes, reward-model calls, requests of a fan-out that
  failed), by the attempt itself when it completes or fails (:func:`add_spend`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ttc_core.ledger import Ledger
from ttc_core.models import BatchStatus, ExpansionBatch, Job, Node, NodeStatus, utcnow
from ttc_core.observability import metrics
from ttc_core.settings import EndpointConfig

__all__ = ["Usage", "add_spend", "count_abandoned", "unstored_usage"]


@dataclass(frozen=True)
class Usage:
    """An amount to add to a job's usage columns."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    cost: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.prompt_tokens or self.completion_tokens or self.requests or self.cost)


def _cost(endpoint: EndpointConfig | None, prompt_tokens: int, completion_tokens: int) -> float:
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
        cost += _cost(endpoints.get(name), spend.prompt_tokens, spend.completion_tokens)
    return Usage(prompt, completion, paid.requests, cost)


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
    prompt, completion, count, failed, thinking = session.execute(
        select(
            func.coalesce(func.sum(Node.prompt_tokens), 0),
            func.coalesce(func.sum(Node.completion_tokens), 0),
            func.count(Node.id),
            func.count(Node.id).filter(Node.status == NodeStatus.failed),
            func.coalesce(func.sum(Node.completion_tokens).filter(Node.role == "think"), 0),
        ).where(Node.batch_id.in_(abandoned))
    ).one()
    session.execute(
        update(ExpansionBatch)
        .where(ExpansionBatch.id.in_(abandoned), ExpansionBatch.status == BatchStatus.pending)
        .values(status=BatchStatus.failed, finished_at=now, claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    job.prompt_tokens += int(prompt)
    job.completion_tokens += int(completion)
    job.thinking_tokens += int(thinking)
    job.node_count += int(count)
    job.failed_nodes += int(failed)
    cost = _cost(endpoints.get(job.endpoint), int(prompt), int(completion))
    job.cost += cost
    metrics.spend(session, job, Usage(int(prompt), int(completion), 0, cost))
