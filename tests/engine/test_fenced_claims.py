"""Fenced claims against a real Postgres and the simulator over HTTP: the heartbeat's
database connection is killed mid-batch (``pg_terminate_backend``), a second worker
takes a batch over while the first is generating, and a write with a stale token is
refused. No sample is generated twice beyond what was in flight at a takeover, and no
usage is lost or counted twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, func, select, update

from tests.engine.conftest import ContextFactory
from tests.helpers import fresh_postgres
from ttc_core.engine.batches import expand
from ttc_core.engine.claims import ClaimLost, fence
from ttc_core.engine.runtime import EngineContext
from ttc_core.engine.steps import FollowUp, advance
from ttc_core.executor import run_followups
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.models import BatchStatus, ExpansionBatch, Job, Node, utcnow
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems

N = 48  # one request per sample, four at a time, 0.4 s each: a batch of about 4.8 s
LEASE_S = 1.2  # a heartbeat every 0.4 s


@pytest.fixture
def slow_sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(base_latency_s=0.4, per_token_latency_s=0.0, slots=4)) as s:
        yield s


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


def _settings(url: str, sim: SimServer) -> Settings:
    return Settings(
        database_url=url,
        endpoints={
            "sim": EndpointConfig(
                base_url=sim.base_url, model="sim-gsm8k", max_concurrency=64, max_n_per_request=1
            )
        },
        expand_batch_samples=N,
        batch_lease_s=LEASE_S,
    )


def _submit(ctx: EngineContext) -> str:
    problem = gsm8k_problems()[4]
    spec = JobSpec(
        strategy="best_of_n",
        endpoint="sim",
        prompt=problem.question,
        params={"n": N},
        # A regex check: nothing slow to import on the event loop while the clock runs.
        verifier={"kind": "regex", "pattern": r"ANSWER:\s*(\S+)"},
        reference=problem.answer,
        seed=5,
    )
    with ctx.db.transaction() as session:
        return create_job(session, spec, ctx.settings, tenant="t").id


def _usage(ctx: EngineContext, job_id: str) -> dict[str, Any]:
    with ctx.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        nodes = session.execute(
            select(
                func.count(Node.id),
                func.count(func.distinct(Node.child_index)),
                func.coalesce(func.sum(Node.completion_tokens), 0),
                func.coalesce(func.sum(Node.prompt_tokens), 0),
            ).where(Node.job_id == job_id, Node.parent_id.is_not(None))
        ).one()
        attempts = session.scalars(
            select(ExpansionBatch.attempts).where(ExpansionBatch.job_id == job_id)
        ).all()
    return {
        "status": job.status,
        "completion_tokens": job.completion_tokens,
        "prompt_tokens": job.prompt_tokens,
        "requests": job.requests,
        "nodes": nodes[0],
        "distinct_children": nodes[1],
        "node_completion_tokens": nodes[2],
        "node_prompt_tokens": nodes[3],
        "attempts": list(attempts),
    }


def _is_heartbeat(statement: str) -> bool:
    # claims.renew: only the expiry is set (a claim also sets attempts and the token).
    return statement.startswith("UPDATE expansion_batches SET claimed_until=") and (
        "enqueued_at" not in statement
    )


def test_killing_the_heartbeats_connection_mid_batch_pays_nothing_twice(
    pg_url: str, slow_sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(_settings(pg_url, slow_sim))
    job_id = _submit(ctx)
    admin_url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    beats: list[int] = []
    killed: list[int] = []
    failures: list[str] = []

    @event.listens_for(ctx.db.engine, "before_cursor_execute")
    def kill_heartbeat_backend(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not _is_heartbeat(statement):
            return
        beats.append(1)
        if len(beats) in (1, 3):  # the first and the third beat find their backend gone
            pid = conn.connection.dbapi_connection.info.backend_pid
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
            killed.append(pid)

    @event.listens_for(ctx.db.engine, "handle_error")
    def count_failures(context: Any) -> None:
        if context.statement and _is_heartbeat(context.statement):
            failures.append(type(context.original_exception).__name__)

    slow_sim.reset_metrics()
    try:
        asyncio.run(_run_and_close(ctx, job_id))
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", kill_heartbeat_backend)
        event.remove(ctx.db.engine, "handle_error", count_failures)

    assert len(killed) == 2, (beats, killed)
    assert len(failures) == 2, failures  # both beats hit a dead connection...
    assert len(beats) >= 4  # ...and were retried on fresh ones
    got = _usage(ctx, job_id)
    metrics = slow_sim.metrics
    assert got["status"] == "succeeded"
    assert got["attempts"] == [1]  # the claim was never lost, so never taken over
    assert got["nodes"] == got["distinct_children"] == N
    assert metrics["choices_total"] == N  # no sample generated twice
    assert got["completion_tokens"] == got["node_completion_tokens"]
    assert got["completion_tokens"] == metrics["completion_tokens_total"]  # no usage lost
    assert got["prompt_tokens"] == metrics["prompt_tokens_total"]
    assert got["requests"] == metrics["requests_total"] == N


async def _run_and_close(ctx: EngineContext, job_id: str) -> None:
    try:
        await run_followups(ctx, [FollowUp("advance", job_id)])
    finally:
        await ctx.aclose()


def test_a_second_claimer_takes_over_and_the_first_stops_writing(
    pg_url: str, slow_sim: SimServer, make_context: ContextFactory
) -> None:
    """Worker A stalls past its lease (simulated by expiring its claim in the database);
    worker B claims the batch. A's heartbeat finds the row taken, cancels A's requests
    and A writes nothing more; B generates only what A had not saved."""
    ctx = make_context(_settings(pg_url, slow_sim))
    job_id = _submit(ctx)
    slow_sim.reset_metrics()

    async def scenario() -> dict[str, Any]:
        try:
            [batch] = advance(ctx, job_id)
            first = asyncio.ensure_future(expand(ctx, batch.id))
            while _saved(ctx, job_id) < 6:
                await asyncio.sleep(0.02)
            with ctx.db.transaction() as session:
                session.execute(
                    update(ExpansionBatch)
                    .where(ExpansionBatch.id == batch.id)
                    .values(claimed_until=utcnow() - dt.timedelta(seconds=1))
                )
            metrics = slow_sim.metrics
            # In flight at the server, or answered and still on the way to the database
            # (a write queued behind the batch's current one: ``ttc_core.engine.group_commit``).
            in_flight = int(metrics["in_flight_sequences"]) + int(metrics["queued_sequences"])
            in_flight += max(0, int(metrics["choices_total"]) - _saved(ctx, job_id))
            stolen_at = time.monotonic()
            second = asyncio.ensure_future(expand(ctx, batch.id))
            assert await first == []  # A lost the claim: no completion, no next step
            first_stopped = time.monotonic() - stolen_at
            assert not second.done()
            assert await second == [FollowUp("advance", job_id)]
            return {"in_flight": in_flight, "first_stopped": first_stopped}
        finally:
            await ctx.aclose()

    seen = asyncio.run(scenario())
    # Within a few heartbeats (0.4 s each; more on a loaded machine), not at the end of
    # the batch (about 4 s after the takeover).
    assert seen["first_stopped"] < 2 * LEASE_S
    got = _usage(ctx, job_id)
    metrics = slow_sim.metrics
    assert got["attempts"] == [2]
    assert got["nodes"] == got["distinct_children"] == N
    # Only what A had in flight (or not yet written) when taken over is generated twice.
    assert N <= metrics["choices_total"] <= N + seen["in_flight"]
    # Every saved sample's usage is counted, once, whoever saved it.
    assert got["completion_tokens"] == got["node_completion_tokens"]
    assert got["prompt_tokens"] == got["node_prompt_tokens"]


def _saved(ctx: EngineContext, job_id: str) -> int:
    with ctx.db.session() as session:
        return int(
            session.scalar(
                select(func.count(Node.id)).where(
                    Node.job_id == job_id, Node.parent_id.is_not(None)
                )
            )
            or 0
        )


def test_a_write_under_a_stale_token_is_refused(
    pg_url: str, slow_sim: SimServer, make_context: ContextFactory
) -> None:
    ctx = make_context(_settings(pg_url, slow_sim))
    job_id = _submit(ctx)
    [batch] = advance(ctx, job_id)
    with ctx.db.transaction() as session:
        session.execute(
            update(ExpansionBatch)
            .where(ExpansionBatch.id == batch.id)
            .values(claim_token="b" * 32, status=BatchStatus.pending)
        )
    with ctx.db.engine.begin() as conn:
        fence(conn, batch.id, "b" * 32)  # the holder may write
    with pytest.raises(ClaimLost), ctx.db.engine.begin() as conn:
        fence(conn, batch.id, "a" * 32)  # a former holder may not
    asyncio.run(ctx.aclose())
