"""Per-tenant limits on job submissions: a rate and a quota of active jobs.

The rate is a token bucket per tenant holding ten seconds' worth of
``tenant_rate_per_minute`` (the same bucket as the endpoint limits in
:mod:`ttc_core.inference.limiter`): in Redis when the service runs on Celery, so that every
API process draws on one bucket, in this process otherwise (embedded mode). A refused
submission learns how long until a token is back (``Retry-After``).

The quota counts the tenant's queued, running and paused jobs inside the submitting
transaction, with the tenant's row locked (``SELECT ... FOR UPDATE``), so concurrent
submissions cannot both squeeze under it.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ttc_core.errors import QuotaError
from ttc_core.inference.limiter import TAKE_SCRIPT, TokenBuckets, bucket_shape
from ttc_core.service.auth import ensure_tenant
from ttc_core.settings import Settings
from ttc_core.store.models import Job, JobStatus, Tenant

log = logging.getLogger(__name__)

ACTIVE_STATUSES = (JobStatus.queued, JobStatus.running, JobStatus.paused)
#: What a tenant at its active-job quota is told to wait: no finish time is known, so
#: a short poll interval.
QUOTA_RETRY_AFTER_S = 5


class SubmissionRate(Protocol):
    def try_take(self, tenant: str, per_minute: float, count: int = 1) -> float:
        """Take ``count`` submission tokens (one per job; a batch larger than the burst
        takes a full bucket): 0.0 if taken, else seconds until they are there. A
        negative ``count`` puts tokens back (capped at the bucket's size on the next take)."""


class LocalSubmissionRate:
    """Buckets in this process (routes run in a thread pool; the buckets lock)."""

    def __init__(self) -> None:
        self._buckets = TokenBuckets()

    def try_take(self, tenant: str, per_minute: float, count: int = 1) -> float:
        return self._buckets.try_take(tenant, float(count), per_minute)


class RedisSubmissionRate:
    """One bucket per tenant in Redis, shared by every API process. If Redis is down the
    submission goes ahead (logged): the broker is down too, and the reaper enqueues the
    committed job once it is back."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._take = self._redis.register_script(TAKE_SCRIPT)
        self._prefix = prefix

    def try_take(self, tenant: str, per_minute: float, count: int = 1) -> float:
        import redis

        capacity, rate = bucket_shape(per_minute)
        amount = min(float(count), capacity)  # as TokenBuckets: a full bucket at most
        try:
            wait = self._take(
                keys=[f"{self._prefix}:tenant-rate:{tenant}"], args=[capacity, rate, amount]
            )
        except redis.RedisError as exc:
            log.warning("tenant %s: rate limit not checked, Redis unavailable: %s", tenant, exc)
            return 0.0
        return float(wait)


def make_submission_rate(settings: Settings) -> SubmissionRate:
    if settings.executor == "celery":
        return RedisSubmissionRate(settings.limiter_redis_url, settings.queue_prefix)
    return LocalSubmissionRate()


def check_rate(rate: SubmissionRate, tenant: str, settings: Settings, count: int = 1) -> None:
    """Raise QuotaError unless the tenant may submit ``count`` more jobs now."""
    wait = rate.try_take(tenant, settings.tenant_rate_per_minute, count)
    if wait > 0:
        raise QuotaError(
            f"tenant {tenant} is over its rate of {settings.tenant_rate_per_minute:g} "
            "submissions per minute",
            retry_after=math.ceil(wait),
        )


@contextlib.contextmanager
def submission_tokens(
    rate: SubmissionRate, tenant: str, settings: Settings, count: int = 1
) -> Iterator[None]:
    """Take ``count`` submission tokens (:func:`check_rate`) around writing a submission;
    one the active-job quota refuses inside gets them back: nothing was written, so a
    tenant that waits for its jobs and retries is not also held back by the rate."""
    check_rate(rate, tenant, settings, count)
    try:
        yield
    except QuotaError:
        rate.try_take(tenant, settings.tenant_rate_per_minute, -count)
        raise


def check_active_jobs(session: Session, tenant: str, settings: Settings) -> None:
    """Raise QuotaError if the tenant is over its quota of active jobs, counting the one
    this transaction just added. Call after adding it: the tenant's row stays locked
    until commit, so the next submission counts this job (a count in a fresh statement
    sees what committed meanwhile), and validation (webhook DNS included) runs before
    the lock is taken, not while other submissions wait on it."""
    limit = settings.tenant_max_active_jobs
    if active_job_room(session, tenant, settings) < 0:
        raise QuotaError(
            f"tenant {tenant} has {limit} active jobs, its quota; wait for one to finish or "
            "cancel one",
            retry_after=QUOTA_RETRY_AFTER_S,
        )


def active_job_room(session: Session, tenant: str, settings: Settings) -> int:
    """How many more active jobs the tenant's quota allows (negative: over it), with the
    tenant's row locked until commit, so that writers who start jobs by this count
    (submissions, an eval's driver step) count each other's."""
    locked = session.scalar(select(Tenant.name).where(Tenant.name == tenant).with_for_update())
    if locked is None:
        ensure_tenant(session, tenant)
        session.scalar(select(Tenant.name).where(Tenant.name == tenant).with_for_update())
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.tenant == tenant, Job.status.in_(ACTIVE_STATUSES))
    )
    return settings.tenant_max_active_jobs - (active or 0)
