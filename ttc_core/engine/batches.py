"""The expansion step: claim a batch, generate and score its missing children (saving each
request's samples the moment they arrive), and complete it, returning the next driver step
when it was the step's last batch.

A batch is claimed with a token and an expiry that a heartbeat renews; a second delivery
of its message leaves a live claim alone, and a claim that expired (its worker was killed)
is taken over. Every write of the batch's results and its completion is fenced by the
token, and a heartbeat that loses the claim stops the work (``ttc_core.engine.claims``, which
also documents the lock order). Attempts are counted in the database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session, aliased

from ttc_core.engine.cancel import stop_when_cancelled
from ttc_core.engine.claims import ClaimLost, fence, heartbeat, retry_on_disconnect, supervised
from ttc_core.engine.expansion import (
    SCORE_COLUMNS,
    ParentContext,
    Run,
    failed_rows,
    generate_rows,
    parent_context,
    rescore,
)
from ttc_core.engine.followup import FollowUp
from ttc_core.engine.group_commit import GroupWriter
from ttc_core.engine.job_failures import report_unscorable
from ttc_core.engine.job_usage import add_spend, cost_of, node_usage, unstored_usage
from ttc_core.engine.runtime import EngineContext
from ttc_core.engine.steps import drive
from ttc_core.inference import ledger
from ttc_core.observability import metrics
from ttc_core.search.tree import NodeRole
from ttc_core.store.models import (
    TERMINAL_STATUSES,
    BatchStatus,
    ExpansionBatch,
    Job,
    Node,
    NodeStatus,
    utcnow,
)
from ttc_core.store.queries import (
    append_event,
    insert_cache_entries,
    insert_nodes,
    insert_requests,
    load_paths,
    lock_job,
    lock_job_row,
)

log = logging.getLogger(__name__)


def _missing_runs(
    session: Session, job: Job, spec: list[dict[str, Any]]
) -> tuple[list[Run], dict[str, ParentContext]]:
    """The children of a batch that are not saved yet (never pay twice), as runs."""
    paths = load_paths(session, list(dict.fromkeys(item["parent_id"] for item in spec)))
    # Only the batch's own index ranges: a root with thousands of children is not read
    # back whole for every batch (that made a best-of-N job quadratic in N).
    ranges: dict[str, tuple[int, int]] = {}
    for item in spec:
        first = int(item["first_index"])
        lo, hi = ranges.get(item["parent_id"], (first, first))
        ranges[item["parent_id"]] = (min(lo, first), max(hi, first + int(item["k"]) - 1))
    within = (
        and_(Node.parent_id == parent_id, Node.child_index.between(lo, hi))
        for parent_id, (lo, hi) in ranges.items()
    )
    have = {
        (parent_id, index)
        for parent_id, index in session.execute(
            select(Node.parent_id, Node.child_index).where(Node.job_id == job.id, or_(*within))
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
        role, temperature = item.get("role", NodeRole.sample), item.get("temperature")
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


@dataclass(frozen=True, slots=True)
class _Write:
    """One save of :func:`_work`: new rows with what reproduces them and the cache
    entries they add; concurrent saves are written together."""

    rows: list[dict[str, Any]]
    requests: Sequence[dict[str, Any]]
    cache_entries: Sequence[dict[str, Any]]


@dataclass
class _Claim:
    """A batch this process holds: what it still has to generate or score."""

    batch_id: str
    token: str
    job: Job
    attempts: int
    give_up: bool
    runs: list[Run]
    parents: dict[str, ParentContext]
    unscored: list[Node] = field(default_factory=list)
    #: What this attempt was answered (set by :func:`_work`), counted by :func:`_complete`.
    paid: ledger.Ledger = field(default_factory=ledger.Ledger)


async def expand(ctx: EngineContext, batch_id: str) -> list[FollowUp]:
    """Generate, score and store a batch's children; returns the next driver step when
    this was the step's last batch.

    The batch is claimed first (a token and an expiry, renewed by a heartbeat while
    generating): a second delivery of the same message leaves a live claim alone, and a
    claim that expired (its worker was killed) is taken over. Attempts are counted in the
    database; after ``max_batch_attempts`` the batch's missing nodes are saved as failed
    and the strategy decides whether the job can go on.
    """
    # The database work runs in threads: the event loop may hold many batches of many
    # jobs at once (a worker with a concurrent pool, the in-process executor).
    claim = await asyncio.to_thread(_claim, ctx, batch_id)
    if claim is None:
        return []
    try:
        requests, trouble = await _work(ctx, claim)
    except ClaimLost as lost:
        log.warning("%s; its new holder finishes it", lost)
        return []
    followups, _ = await asyncio.to_thread(
        _complete_and_go_on, ctx, claim, requests, trouble, False
    )
    return followups


class BatchError(Exception):
    """A batch of :func:`expand_chain` failed; ``batch_id`` says which (the cause is
    chained), so that the caller retries that batch, not the one it started with."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"expansion batch {batch_id} failed")
        self.batch_id = batch_id


async def expand_chain(
    ctx: EngineContext,
    batch_id: str,
    *,
    until: float,
    send: Callable[[list[FollowUp]], object],
) -> None:
    """Expand a batch, then go on depth after depth in this process until ``until``
    (``time.monotonic()``): the transaction that completes a step's last batch also runs
    the next driver step and claims one of its batches for this process; ``send`` gets
    every other follow-up (the step's other batches, for other workers) right after that
    commit. One transaction and no broker hop between two depths of a tree search, where
    separate tasks cost three transactions and a hop.

    Raises :class:`BatchError` (caused by the original error) when a batch fails.
    """
    claim = await asyncio.to_thread(_claim, ctx, batch_id)
    await _go_on(ctx, claim, until=until, send=send)


async def advance_chain(
    ctx: EngineContext,
    job_id: str,
    *,
    until: float,
    send: Callable[[list[FollowUp]], object],
) -> None:
    """A job's driver step and a claim on the first batch it plans, in one transaction,
    then that batch's chain as in :func:`expand_chain`: a job's first request leaves one
    transaction after its driver step starts instead of two. ``send`` gets the step's
    other batches right after the commit.

    A failed driver step raises its own error (the caller retries the step); a failed
    batch raises :class:`BatchError`.
    """
    followups, claim = await asyncio.to_thread(_advance_and_claim, ctx, job_id)
    send(followups)
    await _go_on(ctx, claim, until=until, send=send)


def _advance_and_claim(ctx: EngineContext, job_id: str) -> tuple[list[FollowUp], _Claim | None]:
    try:
        with ctx.db.transaction() as session:
            return _drive_and_claim(ctx, session, job_id)
    except _DriveFailed as failed:
        raise failed.__cause__ or failed from None


async def _go_on(
    ctx: EngineContext,
    claim: _Claim | None,
    *,
    until: float,
    send: Callable[[list[FollowUp]], object],
) -> None:
    while claim is not None:
        current = claim
        try:
            requests, trouble = await _work(ctx, current)
        except ClaimLost as lost:
            log.warning("%s; its new holder finishes it", lost)
            return
        except Exception as exc:
            raise BatchError(current.batch_id) from exc
        go_on = time.monotonic() < until
        try:
            followups, claim = await asyncio.to_thread(
                _complete_and_go_on, ctx, current, requests, trouble, go_on
            )
        except Exception as exc:
            raise BatchError(current.batch_id) from exc
        send(followups)


def _complete_and_go_on(
    ctx: EngineContext, current: _Claim, requests: int, trouble: tuple[int, int], go_on: bool
) -> tuple[list[FollowUp], _Claim | None]:
    """Complete ``current`` and, with ``go_on``, run the next driver step and claim its
    first batch, in one transaction."""
    claim = None
    try:
        with ctx.db.transaction() as session:
            followups = _complete(ctx, session, current, requests, trouble)
            if go_on and followups:
                followups, claim = _drive_and_claim(ctx, session, current.job.id)
    except _DriveFailed:
        # The driver step goes to its own task, with its retries and failure report.
        log.exception("job %s: inline driver step failed; sending it", current.job.id)
        with ctx.db.transaction() as session:
            followups = _complete(ctx, session, current, requests, trouble)
    return followups, claim


class _DriveFailed(Exception):
    pass


def _drive_and_claim(
    ctx: EngineContext, session: Session, job_id: str
) -> tuple[list[FollowUp], _Claim | None]:
    """Inside the completing transaction: the next driver step, and a claim on the first
    batch it planned. Returns the follow-ups for others, and the claim."""
    try:
        job = lock_job(session, job_id)  # the completion's UPDATE holds the lock already
        followups = [] if job is None else drive(ctx, session, job)
        first = next((f for f in followups if f.kind == "expand"), None)
        if job is None or first is None:
            return followups, None
        # The batch the step just added, still pending: its claim goes into its INSERT
        # (no SELECT to load it back, no UPDATE after).
        batch = next(
            (o for o in session.new if isinstance(o, ExpansionBatch) and o.id == first.id), None
        ) or session.get(ExpansionBatch, first.id)
        if batch is None:
            return followups, None
        token = uuid.uuid4().hex
        batch.attempts = 1
        batch.claim_token = token
        batch.claimed_until = utcnow() + dt.timedelta(seconds=ctx.settings.batch_lease_s)
        runs, parents = _missing_runs(session, job, batch.spec)
        session.flush()
        session.expunge(job)
    except Exception as exc:
        raise _DriveFailed from exc
    claim = _Claim(batch.id, token, job, 1, False, runs, parents)
    return [f for f in followups if f is not first], claim


def _claim(ctx: EngineContext, batch_id: str) -> _Claim | None:
    """Claim a pending batch (see :func:`expand`); None when it is done or held."""
    token = uuid.uuid4().hex
    now = utcnow()
    with ctx.db.transaction() as session:
        batch = session.get(ExpansionBatch, batch_id, with_for_update=True)
        if batch is None or batch.status != BatchStatus.pending:
            return None
        claimed_until = aware(batch.claimed_until)
        if claimed_until is not None and claimed_until > now:
            log.info("batch %s is claimed until %s; leaving it", batch_id, claimed_until)
            return None
        job = session.get(Job, batch.job_id)
        if job is None:
            return None
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
    return _Claim(batch_id, token, job, attempts, give_up, runs, parents, unscored)


@metrics.expansion
async def _work(ctx: EngineContext, claim: _Claim) -> tuple[int, tuple[int, int]]:
    """Generate and score what the claim holds; returns the requests made and the
    endpoint's trouble counters from before (failed attempts, circuit openings)."""
    job, batch_id, token = claim.job, claim.batch_id, claim.token

    # Hot path (once or twice per request): plain Core connections, no ORM session, in
    # worker threads so that the round trips of concurrent requests overlap.
    # Each write is fenced by the claim (``ttc_core.engine.claims``: the batch row, then its nodes
    # in id order) and retried on a fresh connection if its connection died.
    def insert_rows(
        rows: list[dict[str, Any]],
        requests: Sequence[dict[str, Any]] = (),
        cache_entries: Sequence[dict[str, Any]] = (),
    ) -> None:
        def write() -> None:
            with ctx.db.engine.begin() as conn:
                fence(conn, batch_id, token)
                # What reproduces the nodes first: each distinct request of the job once.
                insert_requests(conn, sorted(requests, key=lambda r: r["id"]))
                insert_nodes(conn, sorted(rows, key=lambda r: r["id"]))
                # The samples, for other jobs (in key order: one lock order for all).
                insert_cache_entries(conn, cache_entries)

        retry_on_disconnect(write)
        ledger.record_stored(rows)  # their tokens are counted through the nodes

    def update_scores(rows: list[dict[str, Any]]) -> None:
        # Only rows still waiting for their scores: a prune that landed meanwhile stays.
        statement = (
            update(Node.__table__)  # type: ignore[arg-type]
            .where(Node.id == bindparam("node_id"), Node.status == NodeStatus.generated)
            .values({c: bindparam(c) for c in SCORE_COLUMNS})
        )
        values = [
            {"node_id": r["id"], **{c: r[c] for c in SCORE_COLUMNS}}
            for r in sorted(rows, key=lambda r: r["id"])
        ]

        def write() -> None:
            with ctx.db.engine.begin() as conn:
                fence(conn, batch_id, token)
                conn.execute(statement, values)

        retry_on_disconnect(write)

    # Requests that land together share a transaction (``ttc_core.engine.group_commit``): a
    # write carries the rows, the request records and the cache entries of every save
    # that arrived while the previous write was in flight.
    def insert_grouped(writes: list[_Write]) -> None:
        insert_rows(
            [row for w in writes for row in w.rows],
            list({r["id"]: r for w in writes for r in w.requests}.values()),
            sorted(
                {(c["scope"], c["key"]): c for w in writes for c in w.cache_entries}.values(),
                key=lambda c: (c["scope"], c["key"]),
            ),
        )

    inserts = GroupWriter(insert_grouped)
    score_updates = GroupWriter(update_scores)

    async def save(
        rows: list[dict[str, Any]],
        requests: Sequence[dict[str, Any]] = (),
        cache_entries: Sequence[dict[str, Any]] = (),
    ) -> None:
        await inserts.add([_Write(rows, requests, cache_entries)])

    save_scores = score_updates.add

    requests = 0
    runs = claim.runs
    if claim.give_up and runs:
        error = f"gave up after {claim.attempts - 1} attempts (the worker died or the batch failed)"
        insert_rows([row for run in runs for row in failed_rows(job, batch_id, run, error)])
        runs = []
    client = ctx.inference(job.endpoint, job.model)
    trouble_before = (client.failed_attempts, client.breaker.openings)
    if runs or claim.unscored:

        async def generate() -> int:
            # A cancel of the job stops this batch's requests and code runs (within ~0.5 s);
            # the ledger keeps what every answered request cost, whatever happens next.
            with ledger.attempt() as claim.paid:
                async with stop_when_cancelled(ctx, job.id):
                    if claim.unscored:
                        await rescore(ctx, job, claim.unscored, claim.parents, save_scores)
                    if runs:
                        return await generate_rows(
                            ctx, job, batch_id, runs, claim.parents, save, save_scores
                        )
            return 0

        try:
            # The heartbeat supervises the work: a lost claim cancels the requests in
            # flight, and every write after the loss is refused by the fence anyway.
            requests = await supervised(
                asyncio.ensure_future(generate()), asyncio.ensure_future(_heartbeat(ctx, claim))
            )
        except ClaimLost:
            raise
        except BaseException:
            _count_failed_attempt(ctx, job, claim.paid)  # the servers were paid all the same
            _release_claim(ctx, batch_id, token)  # so that a retry can start at once
            raise
    return requests, trouble_before


def _count_failed_attempt(ctx: EngineContext, job: Job, paid: ledger.Ledger) -> None:
    """A failed attempt's answered requests and the tokens none of its saved nodes carries
    go to the job now (its saved nodes count when the batch completes, or when the job
    fails: ``ttc_core.engine.job_usage.count_abandoned``)."""
    usage = unstored_usage(paid, job.endpoint, ctx.settings.endpoints)
    if not usage:
        return
    try:
        with ctx.db.transaction() as session:
            add_spend(session, job, usage)
    except Exception:
        log.warning("job %s: could not count a failed attempt's usage", job.id, exc_info=True)


def _complete(
    ctx: EngineContext,
    session: Session,
    claim: _Claim,
    requests: int,
    trouble_before: tuple[int, int],
) -> list[FollowUp]:
    """The completing transaction's writes: the batch done and the job's usage (fenced by
    the claim: nothing when another worker holds the batch now), results that landed
    under a pruned parent, and what the endpoint did meanwhile. Locks in the documented
    order (``ttc_core.engine.claims``): the job, the batch, then its nodes."""
    job, batch_id = claim.job, claim.batch_id
    epoch = lock_job_row(session, job.id)
    followups = _complete_batch(
        ctx, session, job, batch_id, requests, token=claim.token, paid=claim.paid
    )
    # Nothing can have landed under a pruned parent when no prune committed since the
    # claim (a prune bumps the job's tree_epoch under its row lock, and the claim skipped
    # parents pruned before it) and no earlier attempt wrote rows of this batch.
    pruned_meanwhile = epoch != job.tree_epoch or claim.attempts > 1
    if (claim.runs or claim.unscored) and pruned_meanwhile:
        _prune_landed_under_pruned(session, job.id, batch_id)
    client = ctx.inference(job.endpoint, job.model)
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
    # Replies that could not be read were scored 0; the job ends only if nothing scores.
    report_unscorable(session, job, batch_id, claim.paid, ctx.settings, step_done=bool(followups))
    return followups


def _release_claim(ctx: EngineContext, batch_id: str, token: str) -> None:
    try:
        with ctx.db.transaction() as session:
            # The task's retry message goes out right after: that is the batch's message.
            session.execute(
                update(ExpansionBatch)
                .where(ExpansionBatch.id == batch_id, ExpansionBatch.claim_token == token)
                .values(claimed_until=None, enqueued_at=utcnow())
            )
    except Exception:  # the lease runs out by itself
        log.warning("batch %s: could not release its claim", batch_id, exc_info=True)


async def _heartbeat(ctx: EngineContext, claim: _Claim) -> None:
    """Keep a batch's claim alive while its requests are in flight; raises
    :class:`~ttc_core.engine.claims.ClaimLost` when the claim is gone (``claims.heartbeat``)."""
    await heartbeat(ctx.db, claim.batch_id, claim.token, ctx.settings.batch_lease_s)


def _prune_landed_under_pruned(session: Session, job_id: str, batch_id: str) -> None:
    """Results that were in flight when their parent was pruned are kept, marked pruned.
    Each of the batch's nodes looks up its own parent (by primary key): the cost is the
    batch's, not the job's tree's."""
    parent = aliased(Node)
    pruned_parent = (
        select(parent.id)
        .where(parent.id == Node.parent_id, parent.status == NodeStatus.pruned)
        .exists()
    )
    session.execute(
        update(Node)
        .where(
            Node.batch_id == batch_id,
            Node.job_id == job_id,
            Node.status == NodeStatus.done,
            pruned_parent,
        )
        .values(status=NodeStatus.pruned)
        .execution_options(synchronize_session=False)
    )


def _complete_batch(
    ctx: EngineContext,
    session: Session,
    job: Job,
    batch_id: str,
    requests: int,
    *,
    token: str | None = None,
    paid: ledger.Ledger | None = None,
) -> list[FollowUp]:
    """Mark the batch done and add its usage to the job, once: only while ``token`` (when
    given) still holds the claim. The caller holds the job's row lock."""
    fenced = [ExpansionBatch.__table__.c.claim_token == token] if token is not None else []
    # This attempt's requests and the tokens no node carries (judge votes, reward-model
    # calls, requests of a fan-out that failed): counted once, whoever completes the batch.
    extra = unstored_usage(paid or ledger.Ledger(), job.endpoint, ctx.settings.endpoints)
    requests = max(requests, extra.requests)
    # Core statements on the tables: nothing of the batch or the job is loaded in this
    # session yet (the caller took the job's lock by id), so there are no objects to bring
    # up to date, and the ORM's processing of an UPDATE is skipped.
    batches = ExpansionBatch.__table__.c
    claimed = session.execute(
        update(ExpansionBatch.__table__)  # type: ignore[arg-type]
        .where(batches.id == batch_id, batches.status == BatchStatus.pending, *fenced)
        .values(
            status=BatchStatus.done, requests=requests, finished_at=utcnow(), claimed_until=None
        )
    )
    if getattr(claimed, "rowcount", 0) != 1:
        # Another run of this batch completed it first (its usage is counted), or took it
        # over from us (it counts the rows we saved when it completes); what this run was
        # answered beyond those rows is paid for all the same.
        log.info("batch %s: completed or taken over by another worker", batch_id)
        add_spend(session, job, extra)
        return []
    used = node_usage(session, [batch_id])
    prompt_tokens, completion_tokens = used.prompt_tokens, used.completion_tokens
    count, failed = used.nodes, used.failed
    endpoint = ctx.settings.endpoints.get(job.endpoint)
    cost = cost_of(endpoint, prompt_tokens, completion_tokens)
    cache_requests = paid.cache_requests if paid is not None else 0
    jobs = Job.__table__.c
    pending = session.execute(
        update(Job.__table__)  # type: ignore[arg-type]
        .where(jobs.id == job.id)
        .values(
            prompt_tokens=jobs.prompt_tokens + prompt_tokens + extra.prompt_tokens,
            completion_tokens=jobs.completion_tokens + completion_tokens + extra.completion_tokens,
            thinking_tokens=jobs.thinking_tokens + used.thinking_tokens,
            requests=jobs.requests + requests,
            node_count=jobs.node_count + count,
            failed_nodes=jobs.failed_nodes + failed,
            cost=jobs.cost + cost + extra.cost,
            # What the expansion cache served instead (budgets count it too).
            cache_hits=jobs.cache_hits + used.cache_hits,
            cache_requests=jobs.cache_requests + cache_requests,
            cache_prompt_tokens=jobs.cache_prompt_tokens + used.cache_prompt_tokens,
            cache_completion_tokens=jobs.cache_completion_tokens + used.cache_completion_tokens,
            cache_cost=jobs.cache_cost
            + cost_of(endpoint, used.cache_prompt_tokens, used.cache_completion_tokens),
            pending_batches=jobs.pending_batches - 1,
            updated_at=utcnow(),
        )
        .returning(jobs.pending_batches)
    ).scalar_one()
    metrics.batch_usage(
        session,
        job,
        # What the job's usage gains, the tokens no node carries included.
        prompt_tokens=prompt_tokens + extra.prompt_tokens,
        completion_tokens=completion_tokens + extra.completion_tokens,
        requests=requests,
        cost=cost + extra.cost,
        nodes=count,
        failed=failed,
    )
    metrics.cache_usage(
        session,
        job,
        hits=used.cache_hits,
        requests=cache_requests,
        prompt_tokens=used.cache_prompt_tokens,
        completion_tokens=used.cache_completion_tokens,
    )
    if count:  # a batch of a cancelled job drains with nothing to report
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
