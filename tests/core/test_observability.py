"""Metrics helpers, the log formatters and the scrape-time collectors, without a stack."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from tests.helpers import REDIS_BASE
from ttc_core.observability import context, metrics
from ttc_core.observability.collectors import QueueCollector
from ttc_core.observability.logs import JsonFormatter, TextFormatter


def value(metric: object, *labels: str) -> float:
    child = metric.labels(*labels) if labels else metric  # type: ignore[attr-defined]
    return float(child._value.get())


def record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("ttc.test", logging.INFO, __file__, 1, message, args, None)


def test_json_lines_carry_the_bound_ids() -> None:
    with context.bound(job_id="job-1", batch_id="b-2"):
        line = JsonFormatter().format(record("batch %s done", "b-2"))
    entry = json.loads(line)
    assert entry["message"] == "batch b-2 done"
    assert entry["job_id"] == "job-1" and entry["batch_id"] == "b-2"
    assert entry["level"] == "INFO" and entry["ts"].endswith("Z")
    assert "job_id" not in json.loads(JsonFormatter().format(record("later")))
    assert "[job=job-1]" in _text_with_job()


def _text_with_job() -> str:
    with context.bound(job_id="job-1"):
        return TextFormatter().format(record("hello"))


def test_usage_counts_on_commit_only() -> None:
    engine = create_engine("sqlite://")
    before = value(metrics.JOBS_SUBMITTED, "best_of_n", "t-commit")

    class Job:
        strategy, tenant, id, status, endpoint = "best_of_n", "t-commit", "j", "queued", "sim"

    with Session(engine) as session:
        session.execute(text("select 1"))
        metrics.job_submitted(session, Job())
        session.rollback()
        assert value(metrics.JOBS_SUBMITTED, "best_of_n", "t-commit") == before
        session.execute(text("select 1"))
        metrics.job_submitted(session, Job())
        session.commit()
    assert value(metrics.JOBS_SUBMITTED, "best_of_n", "t-commit") == before + 1


def test_inference_request_records_code_latency_and_in_flight() -> None:
    seen_in_flight: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen_in_flight.append(value(metrics.IN_FLIGHT, "unit-ep"))
        return httpx.Response(429 if "busy" in str(request.url) else 200, json={})

    class Endpoint:
        model = "m"

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            for url in ("http://h:1/v1/chat/completions", "http://h:1/busy/chat/completions"):
                await metrics.inference_request("unit-ep", url, Endpoint(), client.post(url))

    asyncio.run(go())
    assert seen_in_flight == [1.0, 1.0]
    assert value(metrics.IN_FLIGHT, "unit-ep") == 0
    assert value(metrics.INFERENCE_REQUESTS, "unit-ep", "h:1", "200") == 1
    assert value(metrics.INFERENCE_REQUESTS, "unit-ep", "h:1", "429") == 1


def test_sse_gauge_follows_open_streams() -> None:
    @metrics.sse_stream
    async def stream() -> object:
        yield 1
        yield 2

    async def go() -> None:
        before = value(metrics.SSE_STREAMS)
        gen = stream()
        await gen.__anext__()
        assert value(metrics.SSE_STREAMS) == before + 1
        await gen.aclose()  # type: ignore[attr-defined]
        assert value(metrics.SSE_STREAMS) == before

    asyncio.run(go())


@pytest.mark.integration
def test_queue_collector_reads_redis_lists() -> None:
    client = redis.Redis.from_url(f"{REDIS_BASE}/4")
    client.flushdb()
    client.rpush("q.a", b"1", b"2")
    client.rpush("q.a\x06\x163", b"3")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(client, ["q.a", "q.b"], lambda: {"ep": 8}))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    lengths = {s.labels["queue"]: s.value for s in families["ttc_celery_queue_length"].samples}
    assert lengths == {"q.a": 3, "q.b": 0}
    assert families["ttc_endpoint_concurrency_limit"].samples[0].value == 8
    client.flushdb()
