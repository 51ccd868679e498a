"""SQLAlchemy 2 models: jobs, nodes, expansion batches and job events.

The same models run on Postgres (the service) and SQLite (embedded mode). Node ids are
derived from ``(job_id, parent_id, child_index)`` so that an expansion that runs twice
writes the same rows, and inserts use ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Text that models and servers wrote is cleaned on its way in (NUL, lone surrogates).
from ttc_core.text_safety import SafeJSON, SafeText

#: BIGINT on Postgres, INTEGER (rowid alias, so autoincrement works) on SQLite.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp that always comes back timezone-aware (UTC). Postgres keeps the zone;
    SQLite stores none, and a naive value read back would reach the API without one."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class JobStatus(enum.StrEnum):
    #: Committed, waiting for its first driver step.
    queued = "queued"
    #: A driver step or expansion is planned or in flight.
    running = "running"
    #: Held by an operator; no new expansions are planned.
    paused = "paused"
    #: Finished with a result.
    succeeded = "succeeded"
    #: Finished without a result; ``error`` says why.
    failed = "failed"
    #: Stopped by a user.
    cancelled = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class NodeStatus(enum.StrEnum):
    #: Saved as soon as generated, not scored yet (scoring is redone after a crash;
    #: generation, the part that costs GPU time, never is).
    generated = "generated"
    #: Generated and scored.
    done = "done"
    #: Generation failed after its retries; ``meta.error`` says why.
    failed = "failed"
    #: Cut by an operator or the strategy; never expanded again.
    pruned = "pruned"


class BatchStatus(enum.StrEnum):
    pending = "pending"
    done = "done"
    failed = "failed"


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default", index=True)
    strategy: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(128))
    prompt: Mapped[str | None] = mapped_column(Text)
    messages: Mapped[list[Any] | None] = mapped_column(JSON)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    verifier: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Step scorer (process reward model or LLM judge) for step-level search; optional.
    prm: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reference: Mapped[str | None] = mapped_column(Text)
    budget: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued, index=True)
    #: Strategy state that cannot be derived from the tree (round counters and the like).
    strategy_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Number of the driver step in progress; bumps each time a step is planned.
    step: Mapped[int] = mapped_column(Integer, default=0)
    #: Expansion batches of the current step that have not finished (no chords).
    pending_batches: Mapped[int] = mapped_column(Integer, default=0)
    #: Bumped when an operator changes nodes in place (prune, expand): planning views
    #: kept by workers between steps (``ttc_core.engine.tree_cache``) of an older epoch are
    #: built again from the tree.
    tree_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    node_count: Mapped[int] = mapped_column(BigInteger, default=0)
    failed_nodes: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[dict[str, Any] | None] = mapped_column(SafeJSON)
    error: Mapped[str | None] = mapped_column(SafeText)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    driver_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: The problem batch this job solves one problem of (``POST /v1/problem-batches``), if any.
    batch_id: Mapped[str | None] = mapped_column(String(36), index=True)
    #: ``{"url", "events"}``: where this job's events are delivered (Standard Webhooks).
    webhook: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Last ``JobEvent.seq`` handed out (bumped under the row lock by ``append_event``).
    event_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Extended thinking (``ttc_core.engine.thinking.ThinkingSpec``), or None for none.
    thinking: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Tokens generated inside thinking blocks (a part of ``completion_tokens``).
    thinking_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    #: The model asked for, when not the endpoint's own (a replay onto another model).
    model: Mapped[str | None] = mapped_column(String(256))
    #: How the job uses the expansion cache (``ttc_core.store.expansion_cache.CacheMode``).
    cache: Mapped[str] = mapped_column(String(16), default="off", server_default="off")
    #: Samples the expansion cache served instead of a server, and what they would have
    #: cost (requests, tokens, money): the job's usage columns above count only what was
    #: paid; budgets count both (``ttc_core.engine.budgets``), so a cached run grows the same tree.
    cache_hits: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cache_requests: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cache_prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cache_completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    cache_cost: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    #: ``{"source_job_id", "node_id"}``: this job replays that job's subtree under that
    #: node (``ttc_core.service.replay``); None for an ordinary job.
    replay: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_jobs_tenant_created", "tenant", "created_at", "id"),
        # Counting a tenant's active jobs (the concurrent-job quota) without a scan.
        Index("ix_jobs_tenant_status", "tenant", "status"),
    )


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    parent_id: Mapped[str | None] = mapped_column(String(36))
    batch_id: Mapped[str | None] = mapped_column(String(36))
    depth: Mapped[int] = mapped_column(Integer, default=0)
    child_index: Mapped[int] = mapped_column(Integer, default=0)
    #: ``root`` (the prompt), ``sample`` (a whole answer) or ``step`` (one reasoning step).
    role: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(SafeText, default="")
    status: Mapped[str] = mapped_column(String(16), default=NodeStatus.done)
    is_terminal: Mapped[bool] = mapped_column(Boolean, default=False)
    answer: Mapped[str | None] = mapped_column(SafeText)
    #: What strategies rank by: the aggregated step-scorer value of the path when the job
    #: has a step scorer, else the verifier's score.
    score: Mapped[float | None] = mapped_column(Float)
    #: The step scorer's score of this node's own step.
    step_score: Mapped[float | None] = mapped_column(Float)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    meta: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    #: The request that generated it (``generation_requests.id``; with ``seed``, what
    #: reproduces the node). Stored once per distinct request of the job.
    request_id: Mapped[str | None] = mapped_column(String(64))
    #: Served by the expansion cache: its tokens were not paid for by this job.
    cached: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (
        # Idempotent inserts, and (as an index) paging the children of a parent in order.
        UniqueConstraint("job_id", "parent_id", "child_index", name="uq_nodes_child"),
        Index("ix_nodes_batch", "batch_id"),
    )


class ExpansionBatch(Base):
    """Planned work of one driver step: expand these parents with k children each."""

    __tablename__ = "expansion_batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    #: ``[{"parent_id", "first_index", "k"}, ...]``
    spec: Mapped[list[Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.pending, index=True)
    #: Attempts counted in the database: brokers keep no reliable count.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Who is generating this batch now, and until when (renewed by a heartbeat). A second
    #: delivery of the batch's message leaves it alone while the claim is live; the reaper
    #: re-enqueues it once the claim has expired (a killed worker).
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    #: When the batch's last message was sent (planned, re-sent by the reaper, retried):
    #: the reaper sends another only when that one is provably lost (``ttc_core.engine.reaper``).
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), default=utcnow)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(SafeText)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        # The batches of a job's recent steps (``store.load_nodes_since``), without a
        # scan of all its batches.
        Index("ix_expansion_batches_job_step", "job_id", "step"),
    )


class RequestRecord(Base):
    """One distinct generation request of a job, as sent but for ``n`` and ``seed`` (those
    are per node): what, with a node's seed, reproduces the node. Nodes reference it by
    ``request_id``, so the siblings of one request, and every request with the same
    prompt, share one row."""

    __tablename__ = "generation_requests"

    #: SHA-256 of the job id and the request's fingerprint.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(256))
    #: The request's fields (messages, prompt, continue_text, stop, sampling, extra_body).
    body: Mapped[dict[str, Any]] = mapped_column(SafeJSON)
    #: SHA-256 of endpoint, model and body: the expansion cache's key, less the seed.
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ExpansionCacheEntry(Base):
    """One generated sample, content-addressed: ``key`` is SHA-256 of (endpoint, model,
    the request as sent, the sample's seed), ``scope`` the tenant (or ``*`` when the
    operator shares the cache). See ``ttc_core.store.expansion_cache``."""

    __tablename__ = "expansion_cache"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(SafeText, default="")
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    notes: Mapped[dict[str, Any] | None] = mapped_column(SafeJSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    #: Last time a job was served this entry (eviction drops the least recently used).
    used_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class JobEvent(Base):
    """Ordered progress events of a job (for SSE, polling and the UI timeline)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(SafeJSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    #: 1, 2, 3... per job, in commit order: the SSE ``id`` and the polling cursor.
    seq: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_job_events_job", "job_id", "id"),
        Index("uq_job_events_job_seq", "job_id", "seq", unique=True),
    )


class Tenant(Base):
    """A tenant: every job and API key belongs to one. Its row is locked while a
    submission counts the tenant's active jobs, so the quota holds under concurrency."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ApiKey(Base):
    """An API key, stored only as a SHA-256 hash; ``prefix`` is a non-secret hint for
    people to recognise a key in listings."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(ForeignKey("tenants.name"), index=True)
    name: Mapped[str | None] = mapped_column(String(128))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class UiSession(Base):
    """A login of the admin UI: the browser's cookie holds a random token, this row only
    its SHA-256 and the key it stands for. Logout revokes it; so does revoking the key
    (a session of a revoked key is never valid)."""

    __tablename__ = "ui_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class IdempotencyState(enum.StrEnum):
    #: The first request with this key is creating its job.
    in_progress = "in_progress"
    #: The job exists; repeats get the stored response.
    done = "done"


class IdempotencyKey(Base):
    """One ``Idempotency-Key`` of ``POST /v1/jobs``, per tenant. The primary key makes
    concurrent duplicates collide in the database rather than in application code."""

    __tablename__ = "idempotency_keys"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: SHA-256 of the canonical JSON of the validated request body.
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=IdempotencyState.in_progress)
    job_id: Mapped[str | None] = mapped_column(String(36))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)


class DeliveryStatus(enum.StrEnum):
    #: Waiting for its next attempt (``next_attempt_at``).
    pending = "pending"
    #: A receiver answered 2xx.
    delivered = "delivered"
    #: Every attempt of the retry schedule failed.
    exhausted = "exhausted"


class WebhookSecret(Base):
    """A tenant's signing secret (``whsec_...``). The current one has no ``expires_at``;
    a rotated-out one keeps signing until its ``expires_at`` (the grace period)."""

    __tablename__ = "webhook_secrets"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_webhook_secrets_tenant", "tenant", "created_at"),
        # At most one current secret per tenant, even when two first reads race.
        Index(
            "uq_webhook_secrets_current",
            "tenant",
            unique=True,
            sqlite_where=text("expires_at IS NULL"),
            postgresql_where=text("expires_at IS NULL"),
        ),
    )


class WebhookDelivery(Base):
    """One event of a job for its webhook. The id is the ``webhook-id`` header: every
    attempt (retries, redeliveries) sends the same id, so receivers can deduplicate."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    tenant: Mapped[str] = mapped_column(String(64))
    #: ``job.succeeded``, ``job.failed``, ``job.cancelled`` or ``job.progress``.
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    #: ``{"type", "timestamp", "data"}``, sent as the body of every attempt.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: The next attempt was asked for through ``redeliver``.
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Who is sending it now and until when; a duplicate wake-up leaves a live claim alone.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    #: When the reaper last woke it (so a backlog is not woken again every sweep).
    reaped_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: the delivery log."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column(Integer)
    manual: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    #: The address connected to (the one the SSRF guard checked).
    address: Mapped[str | None] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    #: When the next attempt is due after this one failed; None after the last.
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id", "attempt"),)


class ProblemBatch(Base):
    """Many problems with one budget (``POST /v1/problem-batches``): one job per problem (and per
    arm: ``adaptive``, plus ``uniform`` when compared), grown round by round by the batch
    driver step (``ttc_core.problem_batches.rounds``). Not to be confused with expansion batches."""

    __tablename__ = "problem_batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    #: ``allocation``: a batch with one budget (``ttc_core.problem_batches.rounds``); ``eval``: an
    #: evaluation over a dataset (``ttc_core.evals``). Both are many jobs as one unit.
    kind: Mapped[str] = mapped_column(String(16), default="allocation", server_default="allocation")
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued, index=True)
    #: The validated submission less its problems (strategy, endpoint, budget, ...).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``[{"prompt", "reference"}, ...]`` in submission order.
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: Allocation rounds so far and what each decided.
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_problem_batches_tenant_created", "tenant", "created_at", "id"),
        Index("ix_problem_batches_kind_tenant_created", "kind", "tenant", "created_at", "id"),
    )


class Dataset(Base):
    """Problems uploaded once for evaluations (``POST /v1/datasets``), tenant-scoped."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    name: Mapped[str] = mapped_column(String(200), default="")
    #: The validated rows, ``[{"id", "prompt" | "messages", "reference", ...}]``.
    rows: Mapped[list[Any]] = mapped_column(SafeJSON, default=list)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (Index("ix_datasets_tenant_created", "tenant", "created_at", "id"),)
