"""Run one beam search through the API (in this process) and a real Celery worker (a
thread of this process, consuming from Redis) with an in-memory span exporter, then print
the finished spans as JSON. Run by test_tracing.py with the stack's settings in the
environment (a process of its own: settings and the Celery app are read at import)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ttc_core.observability import tracing


def main() -> int:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("ttc-test", exporter=exporter)

    from celery.contrib.testing.worker import start_worker
    from fastapi.testclient import TestClient

    import ttc_worker.tasks  # noqa: F401 - registers the tasks
    from ttc_api.app import create_app
    from ttc_worker.app import app as celery_app
    from ttc_worker.queues import DRIVER_QUEUE, EXPAND_QUEUE

    body = json.loads(sys.argv[1])
    with (
        start_worker(
            celery_app,
            pool="solo",
            perform_ping_check=False,
            loglevel="WARNING",
            queues=[DRIVER_QUEUE, EXPAND_QUEUE],
            shutdown_timeout=30,
        ),
        TestClient(create_app()) as client,
    ):
        resp = client.post("/v1/jobs", json=body)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        deadline = time.monotonic() + 120
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.2)
    spans = [
        {
            "name": s.name,
            "trace_id": format(s.context.trace_id, "032x"),
            "span_id": format(s.context.span_id, "016x"),
            "parent_id": format(s.parent.span_id, "016x") if s.parent else None,
            "start": s.start_time,
            "end": s.end_time,
            "attributes": dict(s.attributes or {}),
        }
        for s in exporter.get_finished_spans()
    ]
    print(json.dumps({"job": job, "spans": spans}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
