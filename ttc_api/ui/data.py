"""Read queries the pages need beyond the ``/v1`` routes: the jobs list filtered by
strategy too, a job's parameters as submitted, and the answer distribution's aggregates
(computed in SQL, so a 100,000-node job ships a few dozen numbers, not its tree)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Integer, and_, cast, func, select
from sqlalchemy.orm import Session

from ttc_api.schemas import JobsPublic
from ttc_api.services import list_jobs
from ttc_core.store.models import Job, Node, NodeStatus

HISTOGRAM_BINS = 20
TOP_ANSWERS = 30


def list_jobs_page(
    session: Session,
    *,
    tenant: str | None,
    status: str | None,
    strategy: str | None,
    cursor: str | None,
    limit: int,
) -> JobsPublic:
    """The jobs list as ``GET /v1/jobs`` pages it, with the strategy filter."""
    return list_jobs(
        session, tenant=tenant, status=status, strategy=strategy, cursor=cursor, limit=limit
    )


def job_parameters(job: Job) -> dict[str, Any]:
    """What was submitted, for the job page (the public job leaves out the prompt)."""
    return {
        "prompt": job.prompt,
        "messages": job.messages,
        "params": job.params,
        "verifier": job.verifier,
        "prm": job.prm,
        "reference": job.reference,
        "budget": job.budget,
        "seed": job.seed,
        "tenant": job.tenant,
    }


class AnswerCount(BaseModel):
    answer: str
    nodes: int
    correct: bool | None
    mean_score: float | None


class ScoreBin(BaseModel):
    low: float
    high: float
    nodes: int
    correct: int


class AnswerDistribution(BaseModel):
    """How the compute spread: answers of the terminals and their score distribution."""

    terminals: int
    correct_terminals: int
    votes: dict[str, float] | None = Field(
        default=None, description="the strategy's own vote (voting strategies), if any"
    )
    answers: list[AnswerCount] = Field(description="terminal answers, most frequent first")
    other_answers: int = Field(description="terminals not in `answers` (a rarer answer, or none)")
    histogram: list[ScoreBin]


def answer_distribution(session: Session, job: Job) -> AnswerDistribution:
    terminal = and_(
        Node.job_id == job.id,
        Node.is_terminal.is_(True),
        Node.status.in_([NodeStatus.done, NodeStatus.pruned]),
    )
    total, right, low, high = session.execute(
        select(
            func.count(Node.id),
            func.coalesce(func.sum(cast(Node.correct, Integer)), 0),
            func.min(Node.score),
            func.max(Node.score),
        ).where(terminal)
    ).one()
    answer_rows = session.execute(
        select(
            Node.answer,
            func.count(Node.id),
            func.max(cast(Node.correct, Integer)),
            func.avg(Node.score),
        )
        .where(terminal, Node.answer.is_not(None))
        .group_by(Node.answer)
        .order_by(func.count(Node.id).desc(), Node.answer)
        .limit(TOP_ANSWERS)
    ).all()
    answers = [
        AnswerCount(
            answer=str(answer),
            nodes=int(count),
            correct=None if right_any is None else bool(right_any),
            mean_score=None if mean is None else float(mean),
        )
        for answer, count, right_any, mean in answer_rows
    ]
    histogram: list[ScoreBin] = []
    if low is not None and high is not None:
        low, high = float(low), float(high)
        if high - low < 1e-9:
            low, high = low - 0.5, high + 0.5
        width = (high - low) / HISTOGRAM_BINS
        # CAST truncates; (score - low) >= 0, so it is floor (SQLite has no floor()).
        index = cast((Node.score - low) / width, Integer)
        counts = {
            int(i): (int(n), int(c or 0))
            for i, n, c in session.execute(
                select(index, func.count(Node.id), func.sum(cast(Node.correct, Integer)))
                .where(terminal, Node.score.is_not(None))
                .group_by(index)
            ).all()
        }
        # The maximum lands at index == bins; it belongs to the last bin.
        last = counts.pop(HISTOGRAM_BINS, (0, 0))
        for i in range(HISTOGRAM_BINS):
            n, c = counts.get(i, (0, 0))
            if i == HISTOGRAM_BINS - 1:
                n, c = n + last[0], c + last[1]
            histogram.append(
                ScoreBin(low=low + i * width, high=low + (i + 1) * width, nodes=n, correct=c)
            )
    votes = (job.result or {}).get("details", {}).get("votes")
    return AnswerDistribution(
        terminals=int(total),
        correct_terminals=int(right),
        votes={str(k): float(v) for k, v in votes.items()} if isinstance(votes, dict) else None,
        answers=answers,
        other_answers=int(total) - sum(a.nodes for a in answers),
        histogram=histogram,
    )
