"""The API's operations surface: ``GET /metrics`` (Prometheus text format) and the
middleware that binds a request's ids to its log lines and counts it.

``/metrics`` serves this process's metrics (engine metrics too, in embedded mode), or,
when ``PROMETHEUS_MULTIPROC_DIR`` is set (several API processes on one host, e.g.
``uvicorn --workers``), the sum over every process writing there; then the scrape-time
collectors of :mod:`ttc_core.observability.collectors`: Celery queue lengths, endpoint
slots in use across all workers, and active jobs. It needs no API key (like ``/health``):
keep it off the public ingress, as the Kubernetes manifests do.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ttc_core.observability import context, metrics
from ttc_core.observability.collectors import (
    ActiveJobsCollector,
    QueueCollector,
    count_active_jobs,
)
from ttc_core.settings import Settings

router = APIRouter(tags=["ops"])

#: Job and batch ids in a path or a Location header.
_JOB_IN_PATH = re.compile(r"/v1/jobs/([0-9A-Za-z_-]{8,64})")
_BATCH_IN_PATH = re.compile(r"/v1/batches/([0-9A-Za-z_-]{8,64})")


@router.get("/metrics", include_in_schema=False)
def read_metrics(request: Request) -> Response:
    """Prometheus metrics of this API (and of the service's shared state)."""
    body = generate_latest(_process_registry()) + generate_latest(request.app.state.ops_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _process_registry() -> Any:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def ops_registry(app: FastAPI, settings: Settings) -> CollectorRegistry:
    """The scrape-time collectors of this app (its own registry: two apps in one process,
    as in tests, do not collide)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ActiveJobsCollector(count_active_jobs(app.state.db)))
    if settings.executor == "celery":
        import redis

        from ttc_worker.queues import DRIVER_QUEUE, EXPAND_QUEUE, MAINTENANCE_QUEUE, WEBHOOK_QUEUE

        queues = [DRIVER_QUEUE, EXPAND_QUEUE, MAINTENANCE_QUEUE, WEBHOOK_QUEUE]
        registry.register(
            QueueCollector(
                redis.Redis.from_url(settings.broker_url, socket_timeout=2),
                queues,
                lambda: {
                    name: ep.max_concurrency
                    for name, ep in settings.endpoints.items()
                    if ep.kind == "generate"
                },
            )
        )
    return registry


class RequestObservability:
    """Per request: bind ``request_id`` (the ``X-Request-ID`` header, or a new one, sent
    back) and the job or batch id in the path (or in the ``Location`` of a submission),
    so that every line logged for it, uvicorn's access line included, carries them; count
    and time the request by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or uuid.uuid4().hex
        path = scope.get("path", "")
        job = _JOB_IN_PATH.search(path)
        batch = _BATCH_IN_PATH.search(path)
        tokens = context.bind_ids(
            request_id=request_id,
            job_id=job.group(1) if job else None,
            batch_id=batch.group(1) if batch else None,
        )
        began = time.perf_counter()
        status = 500

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                out = list(message.get("headers") or [])
                for name, value in out:
                    if name.lower() == b"location" and not job:
                        found = _JOB_IN_PATH.search(value.decode("latin-1"))
                        if found:  # bound here, so uvicorn's access line (in send) has it
                            context.bind_ids(job_id=found.group(1))
                out.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": out}
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
            metrics.HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - began)
            context.unbind(tokens)


def install_observability(app: FastAPI, settings: Settings) -> None:
    """Mount ``/metrics`` and the request middleware on the app."""
    app.state.ops_registry = ops_registry(app, settings)
    app.include_router(router)
    app.add_middleware(RequestObservability)
