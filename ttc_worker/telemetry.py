"""Metrics, logs and traces of a Celery worker, wired through Celery's signals.

Metrics: a worker node's processes (the main process and its prefork children) write to
``PROMETHEUS_MULTIPROC_DIR`` (``ttc worker`` makes a fresh one when it is unset, and wipes
a stale one at start); the main process serves their sum at
``http://<host>:TTC_WORKER_METRICS_PORT/metrics`` (default 9808; 0: off). One scrape
target per worker node (per pod), as Prometheus' multiprocess mode intends.

Logs: Celery's ``setup_logging`` goes to :func:`ttc_core.observability.logs.configure_logging`;
each task binds its job (from the ``ttc_job_id`` header its publisher added), batch and
task ids, and the main process's "Task ... received" lines find the job by task id.

Traces: the publisher's trace context travels in the message headers (W3C
``traceparent``); each task runs in a ``ttc.task <name>`` span under it.

Flower: each inline continuation of an expansion (``ttc_core.engine.batches.expand_chain``) is a
``task-continued`` event of the running task (Flower shows the task as CONTINUED with the
batch), and the task's result says what ran: ``"3 batches of job <id>: <first> + 2
continued inline"``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any

from celery.signals import (
    before_task_publish,
    setup_logging,
    task_postrun,
    task_prerun,
    task_received,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

from ttc_core.observability import context, logs, metrics, tracing
from ttc_core.observability.multiproc import MULTIPROC_ENV

log = logging.getLogger(__name__)

JOB_HEADER = "ttc_job_id"

#: task id -> job id, for the main process's lines about tasks it received (bounded).
_task_jobs: OrderedDict[str, str] = OrderedDict()
_TASK_JOBS_MAX = 10_000
#: The running task's state: one dict per task, in a context variable, so that tasks
#: running concurrently in one process (``--pool threads``) each keep their own; the
#: task's coroutines on the engine loop see it too (``ttc_worker.runtime.run`` carries
#: the task thread's context over).
_RUNNING: ContextVar[dict[str, Any] | None] = ContextVar("ttc_running_task", default=None)


def _running() -> dict[str, Any]:
    return _RUNNING.get() or {}


def _header(request: Any, key: str) -> Any:
    value = getattr(request, key, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(key)
    return value


# ---------------------------------------------------------------- publish


@before_task_publish.connect
def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    job_id = context.current().get("job_id")
    if job_id is not None:
        headers.setdefault(JOB_HEADER, job_id)
    tracing.inject(headers)


# ---------------------------------------------------------------- main process


@setup_logging.connect
def _on_setup_logging(loglevel: Any = None, **_: Any) -> None:
    logs.configure_logging(level=loglevel or None)
    logs.add_enricher(_celery_record_ids)


def _celery_record_ids(record: logging.LogRecord) -> dict[str, str]:
    """Celery's own lines about a task carry the task id in their args."""
    args = record.args
    if not isinstance(args, dict) or "id" not in args:
        return {}
    task_id = str(args["id"])
    found = {"task_id": task_id}
    job_id = _task_jobs.get(task_id)
    if job_id is None and args.get("name") == "ttc.advance":
        job_id = str(args.get("args", "")).strip("()[]',\" ") or None
    if job_id:
        found["job_id"] = job_id
    return found


@task_received.connect
def _on_received(request: Any = None, **_: Any) -> None:
    if request is None:
        return
    job_id = _header(request, JOB_HEADER)
    if job_id is None:
        message = getattr(request, "_message", None)
        job_id = (getattr(message, "headers", None) or {}).get(JOB_HEADER)
    if job_id:
        _task_jobs[str(request.id)] = str(job_id)
        while len(_task_jobs) > _TASK_JOBS_MAX:
            _task_jobs.popitem(last=False)


@worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    if not _forks_pool_processes(sender):
        # --pool threads / solo: this process runs the tasks. Tracing as the caller set it
        # up, if it did (an embedded worker with its own exporter), else from the
        # environment.
        if not tracing.configured():
            tracing.configure_tracing("ttc-worker")
        _count_process()
    _serve_metrics()


def _forks_pool_processes(worker: Any) -> bool:
    pool = getattr(worker, "pool_cls", None)  # a name ("prefork") or the pool class
    return "prefork" in (pool if isinstance(pool, str) else getattr(pool, "__module__", ""))


def _serve_metrics() -> None:
    from ttc_core.settings import get_settings

    port = get_settings().worker_metrics_port
    if not port:
        return
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

    registry: Any = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        log.warning("%s is not set: only the main process's metrics are served", MULTIPROC_ENV)
    host = get_settings().worker_metrics_host
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error("worker metrics: cannot listen on %s:%s (%s)", host, port, exc)
        return
    log.info("worker metrics on http://%s:%s/metrics", host, port)


# ---------------------------------------------------------------- pool processes


@worker_process_init.connect
def _on_process_init(**_: Any) -> None:
    tracing.configure_tracing("ttc-worker")
    _count_process()


def _count_process() -> None:
    if _on_expansion not in metrics.expansion_hooks:
        metrics.expansion_hooks.append(_on_expansion)
    metrics.WORKER_PROCESSES.inc()  # also: every pool process has a metrics file from start


@worker_process_shutdown.connect
def _on_process_shutdown(**_: Any) -> None:
    tracing.shutdown()
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


@task_prerun.connect
def _on_prerun(task_id: str = "", task: Any = None, args: Any = None, **_: Any) -> None:
    context.clear()
    request = getattr(task, "request", None)
    name = getattr(task, "name", "?")
    first = str(args[0]) if args else None
    job_id = _header(request, JOB_HEADER) or (first if name == "ttc.advance" else None)
    batch_id = first if name == "ttc.expand" else None
    context.bind_ids(job_id=job_id, batch_id=batch_id, task_id=task_id)
    carrier = {k: v for k, v in (getattr(request, "headers", None) or {}).items()}
    for key in ("traceparent", "tracestate"):
        if (value := _header(request, key)) is not None:
            carrier[key] = value
    _RUNNING.set(
        dict(
            began=time.perf_counter(),
            # The task itself: its coroutines run on the engine loop's thread, where
            # Celery's thread-local ``current_task`` is not set.
            task=task,
            name=name,
            batches=[],
            span=tracing.OpenSpan(
                f"ttc.task {name}",
                carrier,
                {
                    "messaging.system": "celery",
                    "messaging.message.id": task_id,
                    "ttc.job_id": job_id,
                },
            ),
        )
    )


@task_postrun.connect
def _on_postrun(state: str | None = None, **_: Any) -> None:
    running = _running()
    if not running:
        return
    name = running["name"]
    metrics.WORKER_TASKS.labels(name, state or "UNKNOWN").inc()
    metrics.WORKER_TASK_DURATION.labels(name).observe(time.perf_counter() - running["began"])
    running["span"].end()
    _RUNNING.set(None)
    context.clear()


def _on_expansion(batch_id: str, job_id: str, endpoint: str) -> None:
    """Each expansion a task runs; the second and later ones are inline continuations."""
    running = _running()
    if not running:
        return
    batches: list[str] = running["batches"]
    batches.append(batch_id)
    running["job_id"] = job_id
    if len(batches) == 1:
        return
    metrics.EXPANSION_CONTINUATIONS.labels(endpoint).inc()
    task = running.get("task")
    if task is not None and task.app.conf.worker_send_task_events:
        try:
            task.send_event(
                "task-continued", batch_id=batch_id, job_id=job_id, continuation=len(batches) - 1
            )
        except Exception:  # events off, or the broker is away: Flower misses one line
            log.debug("could not send task-continued", exc_info=True)


def chain_summary() -> str | None:
    """What the running task expanded, as its result (Flower shows it): ``"3 batches of
    job J: B + 2 continued inline"``; None when it expanded nothing."""
    running = _running()
    batches: list[str] = running.get("batches") or []
    if not batches:
        return None
    job = running.get("job_id")
    if len(batches) == 1:
        return f"batch {batches[0]} of job {job}"
    return (
        f"{len(batches)} batches of job {job}: {batches[0]} + {len(batches) - 1} continued inline"
    )
