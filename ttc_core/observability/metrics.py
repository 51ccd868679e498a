"""Every Prometheus metric of ttc, and the one-line helpers the engine calls at its sites.

Naming follows the Prometheus conventions: a ``ttc_`` prefix, base units (seconds),
``_total`` on counters. Labels are bounded: ``endpoint`` (the configured endpoint names),
``replica`` (the host:port that answered, one per configured server), ``tenant`` (one per
tenant: bounded by the tenants an operator creates; a service with very many tenants
should drop it with a relabel rule), ``strategy``, ``status``, ``kind``, ``code``,
``queue``. Never a job, batch or node id.

Processes: the API exposes these at ``/metrics``; a Celery worker node (the main process
and its prefork children) writes them to files in ``PROMETHEUS_MULTIPROC_DIR`` and serves
the sum of all its processes on ``TTC_WORKER_METRICS_PORT`` (see
``ttc_worker.telemetry``). Gauges say how they add up across processes
(``multiprocess_mode``).

Usage counters (tokens, cost, requests charged to jobs, nodes) are counted when the
transaction that adds them to the job commits (:func:`after_commit`), so they agree with
the jobs' own usage columns: a rolled-back completion counts nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import event
from sqlalchemy.orm import Session

from ttc_core.observability import context, tracing

P = ParamSpec("P")
R = TypeVar("R")

#: Inference and scorer latencies: 5 ms (a cached answer) to 2 minutes (a long thought).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: Engine steps: a driver step is milliseconds; an expansion lasts as long as its requests.
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# ---------------------------------------------------------------- jobs and trees

JOBS_SUBMITTED = Counter(
    "ttc_jobs_submitted_total", "Jobs accepted (committed).", ["strategy", "tenant"]
)
JOBS_FINISHED = Counter(
    "ttc_jobs_finished_total",
    "Jobs that reached a terminal status (succeeded, failed, cancelled).",
    ["status", "strategy"],
)
NODES = Counter(
    "ttc_nodes_total",
    "Tree nodes saved by completed expansion batches (status: done or failed).",
    ["endpoint", "status"],
)
SAMPLES = Counter(
    "ttc_inference_samples_total", "Samples (choices) received from an endpoint.", ["endpoint"]
)
TOKENS = Counter(
    "ttc_tokens_total",
    "Tokens charged to jobs (kind: prompt or completion), as in the jobs' usage.",
    ["endpoint", "tenant", "kind"],
)
COST = Counter(
    "ttc_cost_total",
    "Cost charged to jobs, in the unit of the endpoint's price_per_1k_* settings.",
    ["endpoint", "tenant"],
)
JOB_REQUESTS = Counter(
    "ttc_job_requests_total",
    "Inference requests charged to jobs (successful requests; retries not included).",
    ["endpoint", "tenant"],
)
CACHE_LOOKUPS = Counter(
    "ttc_expansion_cache_lookups_total",
    "Samples looked up in the expansion cache (result: hit or miss).",
    ["endpoint", "result"],
)
CACHE_HITS = Counter(
    "ttc_expansion_cache_hits_total",
    "Samples the expansion cache served to jobs (as in the jobs' usage.cache.hits).",
    ["endpoint", "tenant"],
)
CACHE_TOKENS_SAVED = Counter(
    "ttc_expansion_cache_tokens_saved_total",
    "Tokens the expansion cache served instead of a server (kind: prompt or completion).",
    ["endpoint", "tenant", "kind"],
)
CACHE_REQUESTS_SAVED = Counter(
    "ttc_expansion_cache_requests_saved_total",
    "Inference requests the expansion cache made unnecessary.",
    ["endpoint", "tenant"],
)
CACHE_EVICTIONS = Counter(
    "ttc_expansion_cache_evictions_total",
    "Expansion cache entries dropped (reason: age or size).",
    ["reason"],
)
PLANNING_VIEWS = Counter(
    "ttc_planning_views_total",
    "Driver steps by how they had the job's planning view: kept (grown by what landed "
    "since the last step) or built (from the whole tree).",
    ["source"],
)
PLANNING_VIEW_NODES = Counter(
    "ttc_planning_view_nodes_total",
    "Nodes driver steps read into planning views (kept: the new ones; built: all).",
    ["source"],
)
DRIVER_STEP = Histogram(
    "ttc_driver_step_duration_seconds",
    "Driver steps: plan a job's next expansions (database time included).",
    ["strategy"],
    buckets=STEP_BUCKETS,
)
EXPANSION = Histogram(
    "ttc_expansion_duration_seconds",
    "Expansion batches: generate and score a batch's children.",
    ["endpoint"],
    buckets=STEP_BUCKETS,
)

# ---------------------------------------------------------------- inference

INFERENCE_REQUESTS = Counter(
    "ttc_inference_requests_total",
    "HTTP requests to endpoints by outcome: the status code, or timeout / transport.",
    ["endpoint", "replica", "code"],
)
INFERENCE_LATENCY = Histogram(
    "ttc_inference_request_duration_seconds",
    "Latency of one HTTP request to an endpoint (one attempt).",
    ["endpoint", "replica"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "ttc_inference_in_flight_requests",
    "Requests in flight to an endpoint from these processes (the limit, shared by all "
    "workers, is ttc_endpoint_concurrency_limit on the API).",
    ["endpoint"],
    multiprocess_mode="livesum",
)
FAILED_ATTEMPTS = Counter(
    "ttc_inference_failed_attempts_total",
    "Attempts that failed and were retried or given up on (reason: 429, 5xx, timeout, "
    "transport, malformed).",
    ["endpoint", "reason"],
)
RETRIES = Counter("ttc_inference_retries_total", "Inference requests sent again.", ["endpoint"])
SLOT_WAIT = Histogram(
    "ttc_limiter_slot_wait_seconds",
    "Time a request waited for one of the endpoint's max_concurrency slots.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
RATE_WAITS = Counter(
    "ttc_limiter_rate_waits_total",
    "Requests held back by a requests- or tokens-per-minute limit (limit: rpm or tpm).",
    ["endpoint", "limit"],
)
CIRCUIT_OPENINGS = Counter(
    "ttc_circuit_openings_total", "Times an endpoint's circuit breaker opened.", ["endpoint"]
)
REPLICA_UP = Gauge(
    "ttc_replica_up",
    "Whether a replica of an endpoint is in rotation in this process (1) or out (0).",
    ["endpoint", "replica"],
    multiprocess_mode="min",
)
REPLICA_DOWNS = Counter(
    "ttc_replica_downs_total",
    "Times a replica was taken out of rotation (failed requests or health probes).",
    ["endpoint", "replica"],
)
CIRCUIT_OPEN_UNTIL = Gauge(
    "ttc_circuit_open_until_timestamp_seconds",
    "Unix time until which the endpoint's circuit is open (open while it is in the future).",
    ["endpoint"],
    multiprocess_mode="max",
)
SCORER = Histogram(
    "ttc_scorer_call_duration_seconds",
    "One call of a step scorer or verifier (kind: prm, llm_judge, or the verifier's name).",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)

EXPANSION_CONTINUATIONS = Counter(
    "ttc_expansion_continuations_total",
    "Expansion batches a task went on with inline (the next depth, no broker hop).",
    ["endpoint"],
)

# ---------------------------------------------------------------- workers

WORKER_PROCESSES = Gauge(
    "ttc_worker_processes", "Live worker pool processes.", multiprocess_mode="livesum"
)
WORKER_TASKS = Counter(
    "ttc_worker_tasks_total", "Celery tasks run, by task name and final state.", ["task", "state"]
)
WORKER_TASK_DURATION = Histogram(
    "ttc_worker_task_duration_seconds",
    "Celery task run time (an expansion task's includes its inline continuations).",
    ["task"],
    buckets=STEP_BUCKETS,
)

# ---------------------------------------------------------------- the API

HTTP_REQUESTS = Counter(
    "ttc_http_requests_total",
    "API requests by method, route template and status code.",
    ["method", "route", "code"],
)
HTTP_LATENCY = Histogram(
    "ttc_http_request_duration_seconds",
    "API request latency until the response is complete (SSE streams: their lifetime).",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)

# ---------------------------------------------------------------- delivery

WEBHOOK_ATTEMPTS = Counter(
    "ttc_webhook_attempts_total",
    "Webhook delivery attempts by outcome: delivered, retry (failed, will be retried), "
    "exhausted (failed, no attempts left).",
    ["outcome"],
)
WEBHOOK_LATENCY = Histogram(
    "ttc_webhook_attempt_duration_seconds",
    "One webhook delivery attempt, resolve and send.",
    buckets=LATENCY_BUCKETS,
)
SSE_STREAMS = Gauge(
    "ttc_sse_streams_open", "Server-Sent Events streams open.", multiprocess_mode="livesum"
)


# ---------------------------------------------------------------- helpers


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    """Run ``fn`` once the session's transaction commits (dropped on rollback)."""
    hooks: list[Callable[[], None]] = session.info.setdefault("ttc_after_commit", [])
    if not session.info.get("ttc_hooks_listening"):
        session.info["ttc_hooks_listening"] = True
        event.listen(session, "after_commit", _run_hooks)
        event.listen(session, "after_rollback", _drop_hooks)
    hooks.append(fn)


def _run_hooks(session: Session) -> None:
    for fn in session.info.pop("ttc_after_commit", []):
        fn()


def _drop_hooks(session: Session) -> None:
    session.info.pop("ttc_after_commit", None)


class _JobLike(Protocol):
    id: str
    tenant: str
    strategy: str
    status: str
    endpoint: str


def job_submitted(session: Session, job: _JobLike) -> None:
    strategy, tenant = job.strategy, job.tenant
    after_commit(session, lambda: JOBS_SUBMITTED.labels(strategy, tenant).inc())


def job_finished(session: Session, job: _JobLike) -> None:
    status, strategy = str(job.status), job.strategy
    after_commit(session, lambda: JOBS_FINISHED.labels(status, strategy).inc())


def batch_usage(
    session: Session,
    job: _JobLike,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    requests: int,
    cost: float,
    nodes: int,
    failed: int,
) -> None:
    """What a completed batch added to its job, counted when that commits."""
    endpoint, tenant = job.endpoint, job.tenant

    def count() -> None:
        _count_spend(endpoint, tenant, prompt_tokens, completion_tokens, requests, cost)
        NODES.labels(endpoint, "done").inc(nodes - failed)
        NODES.labels(endpoint, "failed").inc(failed)

    after_commit(session, count)


def cache_usage(
    session: Session,
    job: _JobLike,
    *,
    hits: int,
    requests: int,
    prompt_tokens: int,
    completion_tokens: int,
) -> None:
    """What the expansion cache served a completed batch, counted when that commits."""
    endpoint, tenant = job.endpoint, job.tenant
    if not (hits or requests):
        return

    def count() -> None:
        CACHE_HITS.labels(endpoint, tenant).inc(hits)
        CACHE_REQUESTS_SAVED.labels(endpoint, tenant).inc(requests)
        CACHE_TOKENS_SAVED.labels(endpoint, tenant, "prompt").inc(prompt_tokens)
        CACHE_TOKENS_SAVED.labels(endpoint, tenant, "completion").inc(completion_tokens)

    after_commit(session, count)


def cache_lookups(endpoint: str, *, hits: int, misses: int) -> None:
    CACHE_LOOKUPS.labels(endpoint, "hit").inc(hits)
    CACHE_LOOKUPS.labels(endpoint, "miss").inc(misses)


def cache_evicted(*, by_age: int, by_size: int) -> None:
    CACHE_EVICTIONS.labels("age").inc(by_age)
    CACHE_EVICTIONS.labels("size").inc(by_size)


class _UsageLike(Protocol):
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def requests(self) -> int: ...
    @property
    def cost(self) -> float: ...


def spend(session: Session, job: _JobLike, usage: _UsageLike) -> None:
    """Usage added to a job outside a batch's completion (a failed attempt's answered
    requests, a taken-over batch's extra calls), counted when that commits."""
    args = (job.endpoint, job.tenant, usage.prompt_tokens, usage.completion_tokens)
    requests, cost = usage.requests, usage.cost
    after_commit(session, lambda: _count_spend(*args, requests, cost))


def _count_spend(
    endpoint: str, tenant: str, prompt: int, completion: int, requests: int, cost: float
) -> None:
    TOKENS.labels(endpoint, tenant, "prompt").inc(prompt)
    TOKENS.labels(endpoint, tenant, "completion").inc(completion)
    JOB_REQUESTS.labels(endpoint, tenant).inc(requests)
    COST.labels(endpoint, tenant).inc(cost)


@functools.lru_cache(maxsize=256)
def replica_of(url: str) -> str:
    """``host:port`` of a request URL: which server of an endpoint answered."""
    return urlsplit(url).netloc or "unknown"


class _EndpointLike(Protocol):
    model: str


def _operation(url: str) -> str:
    """The GenAI operation name of a request URL: ``chat``, ``text_completion``, or the
    route's last segment for the others (``pooling``, ``classify``, ``completion``)."""
    path = urlsplit(url).path.rstrip("/")
    if path.endswith("/chat/completions"):
        return "chat"
    if path.endswith("/v1/completions"):
        return "text_completion"
    return path.rsplit("/", 1)[-1] or "request"


async def inference_request(
    endpoint: str, url: str, config: _EndpointLike, call: Awaitable[R]
) -> R:
    """Await one HTTP request to an endpoint (``call``, e.g. ``http.post(...)``) with its
    latency, outcome and in-flight count recorded, in a GenAI client span."""
    replica = replica_of(url)
    operation = _operation(url)
    gauge = IN_FLIGHT.labels(endpoint)
    host, _, port = replica.rpartition(":")
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": config.model,
        "server.address": host or replica,
        "server.port": int(port) if port.isdigit() else None,
        "ttc.endpoint": endpoint,
    }
    code = "error"
    gauge.inc()
    began = time.perf_counter()
    with tracing.span(f"{operation} {config.model}", attributes) as current:
        try:
            response = await call
            code = str(getattr(response, "status_code", "error"))
            current.set_attribute("http.response.status_code", int(code) if code.isdigit() else 0)
            return response
        except Exception as exc:
            code = "timeout" if "Timeout" in type(exc).__name__ else "transport"
            raise
        finally:
            gauge.dec()
            INFERENCE_LATENCY.labels(endpoint, replica).observe(time.perf_counter() - began)
            INFERENCE_REQUESTS.labels(endpoint, replica, code).inc()


def samples_received(endpoint: str, count: int) -> None:
    SAMPLES.labels(endpoint).inc(count)


def failed_attempt(endpoint: str, exc: BaseException) -> None:
    """A retryable failure (``RetryableInferenceError``), by reason."""
    status = getattr(exc, "status", None)
    text = str(exc)
    if status == 429:
        reason = "429"
    elif status is not None:
        reason = "5xx"
    elif text.startswith("timeout"):
        reason = "timeout"
    elif text.startswith("malformed"):
        reason = "malformed"
    else:
        reason = "transport"
    FAILED_ATTEMPTS.labels(endpoint, reason).inc()


def inference_retry(what: str) -> None:
    """A request sent again; ``what`` is ``<endpoint><path>`` (retry.py's log label)."""
    RETRIES.labels(what.split("/", 1)[0]).inc()


def slot_waited(key: str, began: float) -> None:
    """A slot of ``key`` (an endpoint name) acquired, after waiting since ``began``
    (``time.monotonic()``)."""
    SLOT_WAIT.labels(key).observe(time.monotonic() - began)


def rate_wait(key: str) -> None:
    """A rate-limit bucket (``<endpoint>:rpm`` or ``<endpoint>:tpm``) made a request wait."""
    endpoint, _, limit = key.rpartition(":")
    RATE_WAITS.labels(endpoint or key, limit).inc()


def circuit_opened(endpoint: str, cooldown_s: float) -> None:
    CIRCUIT_OPENINGS.labels(endpoint).inc()
    CIRCUIT_OPEN_UNTIL.labels(endpoint).set(time.time() + cooldown_s)


def replica_state(endpoint: str, url: str, up: bool) -> None:
    """A replica came into rotation (or back) or went out of it."""
    replica = replica_of(url)
    REPLICA_UP.labels(endpoint, replica).set(1 if up else 0)
    if not up:
        REPLICA_DOWNS.labels(endpoint, replica).inc()


def webhook_attempt(status: str | None, ok: bool, latency_ms: float | None) -> None:
    """One delivery attempt's outcome (``status`` is the delivery's status after it)."""
    outcome = "delivered" if ok else ("retry" if status == "pending" else str(status))
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    if latency_ms is not None:
        WEBHOOK_LATENCY.observe(latency_ms / 1000)


async def scorer_call(kind: str, call: Awaitable[R]) -> R:
    """Await one scorer or verifier call, timed, in a ``ttc.score <kind>`` span."""
    began = time.perf_counter()
    with tracing.span(f"ttc.score {kind}", {"ttc.scorer": kind}):
        try:
            return await call
        finally:
            SCORER.labels(kind).observe(time.perf_counter() - began)


# ---------------------------------------------------------------- decorators


def planning_view(source: str, nodes: int) -> None:
    """A driver step had its planning view (``kept`` or ``built``), reading ``nodes``."""
    PLANNING_VIEWS.labels(source).inc()
    PLANNING_VIEW_NODES.labels(source).inc(nodes)


def driver_step(fn: Callable[P, R]) -> Callable[P, R]:
    """Time a driver step ``fn(ctx, session, job)``, in a span, with the job's ids bound."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        job: Any = kwargs.get("job", args[2] if len(args) > 2 else None)
        began = time.perf_counter()
        with (
            context.bound(job_id=job.id, tenant=job.tenant),
            tracing.span("ttc.driver_step", {"ttc.job_id": job.id, "ttc.strategy": job.strategy}),
        ):
            try:
                return fn(*args, **kwargs)
            finally:
                DRIVER_STEP.labels(job.strategy).observe(time.perf_counter() - began)

    return wrapper


#: Called with (batch_id, job_id, endpoint) as each expansion starts (the worker reports
#: inline continuations to Flower from here).
expansion_hooks: list[Callable[[str, str, str], None]] = []


def expansion(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Time an expansion ``fn(ctx, claim)`` (a claim has ``batch_id`` and ``job``), in a
    span, with the batch's and job's ids bound."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        claim: Any = kwargs.get("claim", args[1] if len(args) > 1 else None)
        job = claim.job
        began = time.perf_counter()
        attributes = {"ttc.job_id": job.id, "ttc.batch_id": claim.batch_id}
        with (
            context.bound(job_id=job.id, batch_id=claim.batch_id, tenant=job.tenant),
            tracing.span("ttc.expansion", attributes),
        ):
            for hook in expansion_hooks:
                hook(claim.batch_id, job.id, job.endpoint)
            try:
                return await fn(*args, **kwargs)
            finally:
                EXPANSION.labels(job.endpoint).observe(time.perf_counter() - began)

    return wrapper


def sse_stream(fn: Callable[P, AsyncIterator[R]]) -> Callable[P, AsyncIterator[R]]:
    """Count an async generator (an SSE stream) as open while it is being iterated."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
        SSE_STREAMS.inc()
        try:
            async for item in fn(*args, **kwargs):
                yield item
        finally:
            SSE_STREAMS.dec()

    return wrapper
