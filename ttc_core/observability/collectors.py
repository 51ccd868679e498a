"""Metrics read from shared state at scrape time, exposed by the API only (one scrape
target for the whole service, so nothing is counted once per worker).

- ``ttc_celery_queue_length{queue}``: messages waiting in each Celery queue (the lengths
  of the broker's Redis lists, priority sub-queues added); what worker autoscaling reads.
- ``ttc_endpoint_slots_in_use{endpoint}``: in-flight requests against each endpoint's
  ``max_concurrency``, across every worker (the limiter's Redis sorted sets), beside
  ``ttc_endpoint_concurrency_limit{endpoint}``.
- ``ttc_jobs{status,strategy}``: queued, running and paused jobs (terminal ones are
  counted by ``ttc_jobs_finished_total``; counting them here would scan the whole table).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: kombu's Redis transport keeps priorities 3, 6 and 9 in lists named queue + sep + step.
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)


class QueueCollector(Collector):
    """Queue lengths and endpoint slots from Redis."""

    def __init__(
        self,
        redis_client: Any,
        queues: Sequence[str],
        endpoints: Callable[[], dict[str, int]],
        slot_prefix: str = "ttc:sem",
    ) -> None:
        self._redis = redis_client
        self._queues = list(queues)
        self._endpoints = endpoints
        self._slot_prefix = slot_prefix

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # collected at scrape time only (the Redis may be down at start)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue = GaugeMetricFamily(
            "ttc_celery_queue_length", "Messages waiting in a Celery queue.", labels=["queue"]
        )
        slots = GaugeMetricFamily(
            "ttc_endpoint_slots_in_use",
            "In-flight requests against an endpoint's limit, across all workers.",
            labels=["endpoint"],
        )
        limit = GaugeMetricFamily(
            "ttc_endpoint_concurrency_limit",
            "An endpoint's max_concurrency.",
            labels=["endpoint"],
        )
        up = GaugeMetricFamily("ttc_broker_up", "Whether the broker answered this scrape.")
        endpoints = self._endpoints()
        try:
            pipe = self._redis.pipeline(transaction=False)
            for name in self._queues:
                pipe.llen(name)
                for step in PRIORITY_STEPS:
                    pipe.llen(f"{name}{PRIORITY_SEP}{step}")
            now = time.time()
            for name in endpoints:
                pipe.zcount(f"{self._slot_prefix}:{name}", now, "+inf")
            counts = pipe.execute()
        except Exception as exc:
            log.warning("metrics: broker unreachable (%s)", exc)
            up.add_metric([], 0)
            yield up
            return
        per_queue = 1 + len(PRIORITY_STEPS)
        for i, name in enumerate(self._queues):
            queue.add_metric([name], sum(counts[i * per_queue : (i + 1) * per_queue]))
        rest = counts[len(self._queues) * per_queue :]
        for (name, max_concurrency), in_use in zip(endpoints.items(), rest, strict=True):
            slots.add_metric([name], in_use)
            limit.add_metric([name], max_concurrency)
        up.add_metric([], 1)
        yield from (queue, slots, limit, up)


class ActiveJobsCollector(Collector):
    """``ttc_jobs{status,strategy}`` for the non-terminal statuses, from the database."""

    ACTIVE = ("queued", "running", "paused")

    def __init__(self, count: Callable[[Sequence[str]], Iterable[tuple[str, str, int]]]) -> None:
        self._count = count

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily(
            "ttc_jobs",
            "Jobs not yet finished, by status and strategy.",
            labels=["status", "strategy"],
        )
        try:
            rows = list(self._count(self.ACTIVE))
        except Exception as exc:
            log.warning("metrics: could not count jobs (%s)", exc)
            return
        for status, strategy, n in rows:
            jobs.add_metric([status, strategy], n)
        yield jobs


def count_active_jobs(db: Any) -> Callable[[Sequence[str]], list[tuple[str, str, int]]]:
    """The query behind :class:`ActiveJobsCollector`, over a ``ttc_core.store.db.Database``."""
    from sqlalchemy import func, select

    from ttc_core.store.models import Job

    def count(statuses: Sequence[str]) -> list[tuple[str, str, int]]:
        with db.session() as session:
            rows = session.execute(
                select(Job.status, Job.strategy, func.count())
                .where(Job.status.in_(list(statuses)))
                .group_by(Job.status, Job.strategy)
            ).all()
        return [(str(s), str(k), int(n)) for s, k, n in rows]

    return count
