"""The step loop shared by every executor.

``advance(job_id)`` is the driver step: under the job's row lock it asks the strategy
what to do, writes the planned expansion batches and the step's pending count in one
transaction, and returns the batches to enqueue *after* commit. ``expand(batch_id)``
generates the batch's missing children (many requests in flight at once), scores them,
inserts them idempotently, and decrements the pending count; the call that brings it to
zero returns the next driver step. No chords: the counter lives in the database.

Both functions are safe to run twice for the same id: a finished batch is skipped, a
saved node is never generated again, and usage is added once, by whoever completes the
batch.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from ttc_core.expansion import (
    SCORE_COLUMNS,
    STEP_ROLES,
    ParentContext,
    Run,
    failed_rows,
    generate_rows,
    parent_context,
    rescore,
)
from ttc_core.models import (
    TERMINAL_STATUSES,
    BatchStatus,
    ExpansionBatch,
    Job,
    JobStatus,
    Node,
    NodeStatus,
    utcnow,
)
from ttc_core.runtime import EngineContext
from ttc_core.settings import EndpointConfig
from ttc_core.store import append_event, insert_nodes, load_paths, load_tree, lock_job, path_text
from ttc_core.strategies import Expand, SamplingParams, Selection, get_strategy
from ttc_core.tree import TreeView, node_id_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A task for the executor to run next: a driver step or an expansion batch."""

    kind: Literal["advance", "expand"]
    id: str


# ---------------------------------------------------------------- driver step


def advance(ctx: EngineContext, job_id: str) -> list[FollowUp]:
    """Plan the next step of a job; returns the expansion batches to enqueue."""
    with ctx.db.transaction() as session:
        job = lock_job(session, job_id)
        if job is None or job.status in TERMINAL_STATUSES or job.status == JobStatus.paused:
            return []
        if job.pending_batches > 0:
            return []  # a step is in flight; its last batch enqueues the next driver step
        if job.status == JobStatus.queued:
            job.status = JobStatus.running
            job.started_at = utcnow()
            append_event(session, job.id, "status_changed", status=JobStatus.running)
        strategy = get_strategy(job.strategy)
        params = strategy.parse_params(job.params)
        tree = load_tree(session, job.id)
        exhausted = budget_exhausted(job)
        if exhausted:
            _finish(session, job, strategy.select(tree, params), ended_by=budget_label(exhausted))
            return []
        plan = strategy.plan(tree, params, job.strategy_state)
        if plan.state is not None:
            job.strategy_state = plan.state
        _merge_node_meta(session, plan.node_meta)
        if plan.finish is not None:
            _finish(session, job, plan.finish)
            return []
        expansions, cut_by = trim_to_budget(
            job, params, plan.expansions, ctx.settings.endpoints.get(job.endpoint)
        )
        if not expansions:
            label = budget_label(cut_by) if cut_by else "budget"
            _finish(session, job, strategy.select(tree, params), ended_by=label)
            return []
        batches = _make_batches(job, tree, expansions, ctx.settings.expand_batch_samples)
        job.step += 1
        job.pending_batches = len(batches)
        session.add_all(batches)
        append_event(
            session,
            job.id,
            "step_planned",
            step=job.step,
            batches=len(batches),
            samples=sum(e.k for e in expansions),
        )
        return [FollowUp("expand", b.id) for b in batches]


def _merge_node_meta(session: Session, updates: dict[str, dict[str, Any]]) -> None:
    if not updates:
        return
    rows = session.execute(select(Node.id, Node.meta).where(Node.id.in_(list(updates)))).all()
    session.execute(
        update(Node),
        [{"id": node_id, "meta": {**(meta or {}), **updates[node_id]}} for node_id, meta in rows],
    )


def budget_label(name: str) -> str:
    """How a job says which budget ended it: ``max_tokens`` -> ``"budget: tokens"``."""
    return f"budget: {name.removeprefix('max_')}"


def budget_exhausted(job: Job) -> str | None:
    """Name of the budget this job has used up, if any."""
    budget = job.budget or {}
    checks = {
        "max_tokens": job.completion_tokens,
        "max_requests": job.requests,
        "max_nodes": job.node_count,
        "max_cost": job.cost,
    }
    for name, used in checks.items():
        limit = budget.get(name)
        if limit is not None and used >= limit:
            return name
    limit_s = budget.get("max_seconds")
    if limit_s is not None and job.started_at is not None:
        started = job.started_at
        if started.tzinfo is None:
            started = started.replace(tzinfo=dt.UTC)
        if (utcnow() - started).total_seconds() >= limit_s:
            return "max_seconds"
    return None


def trim_to_budget(
    job: Job, params: SamplingParams, expansions: list[Expand], endpoint: EndpointConfig | None
) -> tuple[list[Expand], str | None]:
    """Reserve before dispatch: never plan more nodes, requests, worst-case tokens or
    worst-case cost than the budget has left. Returns the expansions that fit and the name
    of the budget that cut them, if one did."""
    budget = job.budget or {}
    per_request = endpoint.max_n_per_request if endpoint and endpoint.supports_n else 1
    room: dict[str, float] = {}  # samples each budget still allows
    if (limit := budget.get("max_nodes")) is not None:
        room["max_nodes"] = limit - job.node_count
    if (limit := budget.get("max_tokens")) is not None:
        room["max_tokens"] = (limit - job.completion_tokens) // max(1, params.max_tokens)
    if (limit := budget.get("max_cost")) is not None and endpoint is not None:
        prompt_tokens = len(job.prompt or str(job.messages or "")) / 4
        per_sample = (
            params.max_tokens * endpoint.price_per_1k_completion
            + prompt_tokens * endpoint.price_per_1k_prompt
        ) / 1000
        if per_sample > 0:
            room["max_cost"] = (limit - job.cost) // per_sample
    requests_left = None
    if (limit := budget.get("max_requests")) is not None:
        requests_left = limit - job.requests
    trimmed: list[Expand] = []
    cut_by: str | None = None
    for exp in expansions:
        k = exp.k
        for name, left in room.items():
            if left < k:
                k, cut_by = int(max(0, left)), name
        if requests_left is not None and -(-k // per_request) > requests_left:
            k, cut_by = max(0, requests_left * per_request), "max_requests"
        if k <= 0:
            break
        trimmed.append(Expand(exp.parent_id, k, exp.role, exp.temperature))
        for name in room:
            room[name] -= k
        if requests_left is not None:
            requests_left -= -(-k // per_request)
    return trimmed, cut_by


def _make_batches(
    job: Job, tree: TreeView, expansions: Sequence[Expand], batch_samples: int
) -> list[ExpansionBatch]:
    """Pack expansions into batches of at most ``batch_samples`` children each."""
    items: list[list[dict[str, Any]]] = [[]]
    room = batch_samples
    for exp in expansions:
        first = tree.next_child_index(exp.parent_id)
        left = exp.k
        while left > 0:
            if room == 0:
                items.append([])
                room = batch_samples
            take = min(left, room)
            items[-1].append(
                {
                    "parent_id": exp.parent_id,
                    "first_index": first,
                    "k": take,
                    "role": exp.role,
                    "temperature": exp.temperature,
                }
            )
            first += take
            left -= take
            room -= take
    step = job.step + 1
    return [
        ExpansionBatch(
            id=node_id_for(job.id, f"batch:{step}", i),
            job_id=job.id,
            step=step,
            spec=spec,
            status=BatchStatus.pending,
            attempts=0,
            requests=0,
        )
        for i, spec in enumerate(items)
        if spec
    ]


def _finish(session: Session, job: Job, selection: Selection, ended_by: str | None = None) -> None:
    text = None
    if selection.node_id is not None:
        node = session.get(Node, selection.node_id)
        if node is not None and node.role in STEP_ROLES:
            params = get_strategy(job.strategy).parse_params(job.params)
            delimiter = str(getattr(params, "delimiter", "\n\n"))
            steps = [n.text for n in path_text(session, node.id) if n.role in STEP_ROLES]
            text = delimiter.join(steps)
        elif node is not None:
            text = node.text
    job.result = {
        "answer": selection.answer,
        "text": text,
        "score": selection.score,
        "correct": selection.correct,
        "node_id": selection.node_id,
        "ended_by": ended_by or "strategy",
        "details": selection.details,
    }
    job.status = JobStatus.failed if selection.error else JobStatus.succeeded
    job.error = selection.error
    job.finished_at = utcnow()
    job.lease_owner = None
    append_event(
        session,
        job.id,
        "status_changed",
        status=job.status,
        answer=selection.answer,
        score=selection.score,
        ended_by=ended_by or "strategy",
        error=selection.error,
    )


# ---------------------------------------------------------------- expansion


def _missing_runs(
    session: Session, job: Job, spec: list[dict[str, Any]]
) -> tuple[list[Run], dict[str, ParentContext]]:
    """The children of a batch that are not saved yet (never pay twice), as runs."""
    paths = load_paths(session, list(dict.fromkeys(item["parent_id"] for item in spec)))
    have = {
        (parent_id, index)
        for parent_id, index in session.execute(
            select(Node.parent_id, Node.child_index).where(
                Node.job_id == job.id, Node.parent_id.in_(list(paths))
            )
        )
    }
    runs: list[Run] = []
    parents: dict[str, ParentContext] = {}
    for item in spec:
        path = paths.get(item["parent_id"])
        if not path or path[-1].status != NodeStatus.done:
            continue  # pruned or failed parents are not expanded
        parent = path[-1]
        first, k = int(item["first_index"]), int(item["k"])
        role, temperature = item.get("role", "sample"), item.get("temperature")
        start: int | None = None
        for idx in [*range(first, first + k), None]:
            missing = idx is not None and (parent.id, idx) not in have
            if missing and start is None:
                start = idx
            elif not missing and start is not None:
                end = first + k if idx is None else idx
                runs.append(Run(parent.id, parent.depth, start, end - start, role, temperature))
                start = None
        if parent.id not in parents:
            parents[parent.id] = parent_context(path)
    return runs, parents


def aware(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment


async def expand(ctx: EngineContext, batch_id: str) -> list[FollowUp]:
    """Generate, score and store a batch's children; returns the next driver step when
    this was the step's last batch.

    The batch is claimed first (a token and an expiry, renewed by a heartbeat while
    generating): a second delivery of the same message leaves a live claim alone, and a
    claim that expired (its worker was killed) is taken over. Attempts are counted in the
    database; after ``max_batch_attempts`` the batch's missing nodes are saved as failed
    and the strategy decides whether the job can go on.
    """
    token = uuid.uuid4().hex
    now = utcnow()
    with ctx.db.transaction() as session:
        batch = session.get(ExpansionBatch, batch_id, with_for_update=True)
        if batch is None or batch.status != BatchStatus.pending:
            return []
        claimed_until = aware(batch.claimed_until)
        if claimed_until is not None and claimed_until > now:
            log.info("batch %s is claimed until %s; leaving it", batch_id, claimed_until)
            return []
        job = session.get(Job, batch.job_id)
        if job is None:
            return []
        give_up = batch.attempts >= ctx.settings.max_batch_attempts
        batch.attempts += 1
        batch.claim_token = token
        batch.claimed_until = now + dt.timedelta(seconds=ctx.settings.batch_lease_s)
        runs, parents = (
            ([], {}) if job.status in TERMINAL_STATUSES else _missing_runs(session, job, batch.spec)
        )
        unscored = list(
            session.scalars(
                select(Node).where(Node.batch_id == batch_id, Node.status == NodeStatus.generated)
            )
        )
        if unscored and job.status not in TERMINAL_STATUSES:
            parent_ids = list({n.parent_id for n in unscored if n.parent_id})
            for path in load_paths(session, parent_ids).values():
                parents.setdefault(path[-1].id, parent_context(path))
        else:
            unscored = []
        attempts = batch.attempts
        session.expunge_all()

    # Hot path (twice per request): plain Core connections, no ORM session, in worker
    # threads so that the round trips of concurrent requests overlap.
    def insert_rows(rows: list[dict[str, Any]]) -> None:
        with ctx.db.engine.begin() as conn:
            insert_nodes(conn, rows)

    def update_scores(rows: list[dict[str, Any]]) -> None:
        # Only rows still waiting for their scores: a prune that landed meanwhile stays.
        statement = (
            update(Node.__table__)  # type: ignore[arg-type]
            .where(Node.id == bindparam("node_id"), Node.status == NodeStatus.generated)
            .values({c: bindparam(c) for c in SCORE_COLUMNS})
        )
        with ctx.db.engine.begin() as conn:
            conn.execute(
                statement, [{"node_id": r["id"], **{c: r[c] for c in SCORE_COLUMNS}} for r in rows]
            )

    async def save(rows: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(insert_rows, rows)

    async def save_scores(rows: list[dict[str, Any]]) -> None:
        await asyncio.to_thread(update_scores, rows)

    requests = 0
    if give_up and runs:
        error = f"gave up after {attempts - 1} attempts (the worker died or the batch failed)"
        insert_rows([row for run in runs for row in failed_rows(job, batch_id, run, error)])
        runs = []
    client = ctx.inference(job.endpoint)
    trouble_before = (client.failed_attempts, client.breaker.openings)
    if runs or unscored:
        heartbeat = asyncio.ensure_future(_heartbeat(ctx, batch_id, token))
        try:
            if unscored:
                await rescore(ctx, job, unscored, parents, save_scores)
            if runs:
                requests = await generate_rows(ctx, job, batch_id, runs, parents, save, save_scores)
        except BaseException:
            _release_claim(ctx, batch_id, token)  # so that a retry can start at once
            raise
        finally:
            heartbeat.cancel()

    with ctx.db.transaction() as session:
        if runs or unscored:
            _prune_landed_under_pruned(session, job.id, batch_id)
        failed_attempts = client.failed_attempts - trouble_before[0]
        openings = client.breaker.openings - trouble_before[1]
        if failed_attempts or openings:
            # What the endpoint did while this batch ran (this process's view).
            append_event(
                session,
                job.id,
                "endpoint_trouble",
                endpoint=job.endpoint,
                batch_id=batch_id,
                failed_attempts=failed_attempts,
                circuit_openings=openings,
                circuit_open=client.breaker.is_open,
            )
        return _complete_batch(ctx, session, job, batch_id, requests)


def _release_claim(ctx: EngineContext, batch_id: str, token: str) -> None:
    try:
        with ctx.db.transaction() as session:
            session.execute(
                update(ExpansionBatch)
                .where(ExpansionBatch.id == batch_id, ExpansionBatch.claim_token == token)
                .values(claimed_until=None)
            )
    except Exception:  # the lease runs out by itself
        log.warning("batch %s: could not release its claim", batch_id, exc_info=True)


async def _heartbeat(ctx: EngineContext, batch_id: str, token: str) -> None:
    """Keep a batch's claim alive while its requests are in flight."""
    lease = ctx.settings.batch_lease_s
    while True:
        await asyncio.sleep(lease / 3)
        with ctx.db.transaction() as session:
            session.execute(
                update(ExpansionBatch)
                .where(ExpansionBatch.id == batch_id, ExpansionBatch.claim_token == token)
                .values(claimed_until=utcnow() + dt.timedelta(seconds=lease))
            )


def _prune_landed_under_pruned(session: Session, job_id: str, batch_id: str) -> None:
    """Results that were in flight when their parent was pruned are kept, marked pruned."""
    pruned_parents = select(Node.id).where(Node.job_id == job_id, Node.status == NodeStatus.pruned)
    session.execute(
        update(Node)
        .where(
            Node.batch_id == batch_id,
            Node.status == NodeStatus.done,
            Node.parent_id.in_(pruned_parents),
        )
        .values(status=NodeStatus.pruned)
        .execution_options(synchronize_session=False)
    )


def _complete_batch(
    ctx: EngineContext, session: Session, job: Job, batch_id: str, requests: int
) -> list[FollowUp]:
    claimed = session.execute(
        update(ExpansionBatch)
        .where(ExpansionBatch.id == batch_id, ExpansionBatch.status == BatchStatus.pending)
        .values(
            status=BatchStatus.done, requests=requests, finished_at=utcnow(), claimed_until=None
        )
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return []  # another run of this batch completed it first; its usage is counted
    prompt_tokens, completion_tokens, count, failed = session.execute(
        select(
            func.coalesce(func.sum(Node.prompt_tokens), 0),
            func.coalesce(func.sum(Node.completion_tokens), 0),
            func.count(Node.id),
            func.count(Node.id).filter(Node.status == NodeStatus.failed),
        ).where(Node.batch_id == batch_id)
    ).one()
    endpoint = ctx.settings.endpoints.get(job.endpoint)
    cost = 0.0
    if endpoint is not None:
        cost = (
            prompt_tokens * endpoint.price_per_1k_prompt
            + completion_tokens * endpoint.price_per_1k_completion
        ) / 1000
    pending = session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(
            prompt_tokens=Job.prompt_tokens + prompt_tokens,
            completion_tokens=Job.completion_tokens + completion_tokens,
            requests=Job.requests + requests,
            node_count=Job.node_count + count,
            failed_nodes=Job.failed_nodes + failed,
            cost=Job.cost + cost,
            pending_batches=Job.pending_batches - 1,
            updated_at=utcnow(),
        )
        .returning(Job.pending_batches)
    ).scalar_one()
    append_event(
        session,
        job.id,
        "nodes_added",
        batch_id=batch_id,
        nodes=int(count),
        failed=int(failed),
        completion_tokens=int(completion_tokens),
    )
    return [FollowUp("advance", job.id)] if pending <= 0 else []


def fail_job(ctx: EngineContext, job_id: str, error: str) -> None:
    """Mark a job failed with the reason (an unexpected error in its step loop)."""
    with ctx.db.transaction() as session:
        job = lock_job(session, job_id)
        if job is None or job.status in TERMINAL_STATUSES:
            return
        job.status = JobStatus.failed
        job.error = error[:2000]
        job.finished_at = utcnow()
        append_event(session, job.id, "status_changed", status=JobStatus.failed, error=job.error)


def job_of_batch(ctx: EngineContext, batch_id: str) -> str | None:
    with ctx.db.session() as session:
        return session.scalar(select(ExpansionBatch.job_id).where(ExpansionBatch.id == batch_id))


def run_driver_steps(ctx: EngineContext, followups: Sequence[FollowUp]) -> list[FollowUp]:
    """Run driver steps right here and return only the expansion batches to dispatch.

    The task that finishes a step's last batch plans the next step itself instead of
    sending a message for it: one broker hop less per depth of a tree search (a driver
    step lost to a crash is no less recoverable than a lost message for it).
    """
    pending = list(followups)
    batches: list[FollowUp] = []
    while pending:
        followup = pending.pop(0)
        if followup.kind == "advance":
            pending.extend(advance(ctx, followup.id))
        else:
            batches.append(followup)
    return batches
