"""Job submission behind ``POST /v1/jobs``: the tenant, the idempotency key, the
per-tenant limits, then the job itself.

Order matters: a replayed request (same ``Idempotency-Key``, same body) is answered before
any limit is charged, and a refused one (invalid, over a limit) frees its key again so
that the client can retry with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import Field
from sqlalchemy import select

from ttc_api.deps import DEFAULT_TENANT
from ttc_api.schemas import JobAccepted
from ttc_core.errors import InputError
from ttc_core.service import idempotency
from ttc_core.service.auth import TENANT_PATTERN, Principal
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.service.tenant_limits import SubmissionRate, check_active_jobs, submission_tokens
from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Tenant

log = logging.getLogger(__name__)

ACCEPTED = 202


class JobCreate(JobSpec):
    """A job submission; ``tenant`` is for admin keys only."""

    tenant: str | None = Field(
        default=None,
        max_length=64,
        pattern=TENANT_PATTERN,
        description="admin keys only: the tenant the job belongs to (default: 'default'); "
        "another key may only name its own tenant",
    )


@dataclass(frozen=True)
class Submitted:
    accepted: JobAccepted
    #: The response of an earlier request with the same Idempotency-Key, sent again.
    replayed: bool


def job_tenant(db: Database, principal: Principal, requested: str | None) -> str:
    """Whose job this is: the key's tenant, or for an admin the tenant it names."""
    if not principal.admin:
        if requested is not None and requested != principal.tenant:
            raise InputError("only an admin key may submit for another tenant", field="tenant")
        return principal.tenant
    if requested is None or requested == DEFAULT_TENANT:
        return DEFAULT_TENANT
    with db.session() as session:
        if session.scalar(select(Tenant.name).where(Tenant.name == requested)) is None:
            raise InputError(f"unknown tenant {requested!r}", field="tenant")
    return requested


def submit(
    *,
    db: Database,
    settings: Settings,
    rate: SubmissionRate,
    principal: Principal,
    spec: JobCreate,
    idempotency_key: str | None,
) -> Submitted:
    """Create the job (the caller dispatches it after this returns, unless replayed)."""
    tenant = job_tenant(db, principal, spec.tenant)
    key = idempotency.check_key(idempotency_key) if idempotency_key is not None else None
    # Keys are scoped to the caller (an admin's keys are its own, whatever tenant it
    # submits for).
    scope = principal.tenant
    if key is not None:
        body = spec.model_dump(mode="json")
        replay = idempotency.claim(
            db, scope, key, idempotency.fingerprint(body), settings.idempotency_ttl_s
        )
        if replay is not None:
            return Submitted(JobAccepted.model_validate(replay.body), replayed=True)
    try:
        with submission_tokens(rate, tenant, settings), db.transaction() as session:
            job = create_job(session, spec, settings, tenant=tenant, admin=principal.admin)
            check_active_jobs(session, tenant, settings)
            accepted = JobAccepted(id=job.id, status=job.status, location=f"/v1/jobs/{job.id}")
            if key is not None:
                idempotency.finish(
                    session,
                    scope,
                    key,
                    job_id=job.id,
                    status=ACCEPTED,
                    body=accepted.model_dump(mode="json"),
                )
    except BaseException:
        if key is not None:
            _release(db, scope, key)
        raise
    return Submitted(accepted, replayed=False)


def _release(db: Database, scope: str, key: str) -> None:
    try:
        idempotency.release(db, scope, key)
    except Exception:  # the original error matters more; the key frees itself later
        log.warning("tenant %s: could not free Idempotency-Key %r", scope, key, exc_info=True)
