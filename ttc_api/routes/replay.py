"""Replay routes: re-run a finished job (or a subtree) as a new job, and compare them."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Response, status

from ttc_api import examples
from ttc_api.deps import (
    DatabaseDep,
    DispatcherDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    SubmissionRateDep,
    TenantDep,
)
from ttc_api.problems import PROBLEM_RESPONSES, problem_responses
from ttc_api.schemas import JobAccepted, ReplayPublic
from ttc_api.services import get_job
from ttc_core.errors import NotFoundError
from ttc_core.service.replay import ReplaySpec, create_replay, replay_report
from ttc_core.service.tenant_limits import check_active_jobs, submission_tokens

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=PROBLEM_RESPONSES)

REPLAY_DESCRIPTION = """\
Replay a finished job, or the subtree under `node_id`, against its endpoint or another
(`endpoint`, `model`), as a new job; `Location` is the new job, and
`GET /v1/jobs/{new}/replay` says where its tree diverges from this one's.

The replay regenerates every node of the old (sub)tree at its old position, with its
old seed, role and temperature, each prompt built from the new tree's own path; it does
not re-plan the search, and never reads the expansion cache. The path above `node_id`
is copied. Limits are those of a submission (`429`); a job still running is `409`.
"""


@router.post(
    "/{job_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    description=REPLAY_DESCRIPTION,
    responses=problem_responses(409, 429),
    openapi_extra=examples.request_example(examples.REPLAY_REQUEST),
)
def replay_job(
    job_id: str,
    response: Response,
    db: DatabaseDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    principal: PrincipalDep,
    tenant: TenantDep,
    rate: SubmissionRateDep,
    spec: ReplaySpec | None = None,
) -> JobAccepted:
    """Replay a finished job (or a subtree) as a new job."""
    spec = spec or ReplaySpec()
    with db.session() as session:
        owner = get_job(session, job_id, tenant=tenant).tenant
    with submission_tokens(rate, owner, settings), db.transaction() as session:
        source = get_job(session, job_id, tenant=tenant)
        job = create_replay(session, source, spec, settings, admin=principal.admin)
        check_active_jobs(session, owner, settings)
        accepted = JobAccepted(id=job.id, status=job.status, location=f"/v1/jobs/{job.id}")
    dispatcher.submit(accepted.id)
    response.headers["Location"] = accepted.location
    return accepted


@router.get("/{job_id}/replay", response_model=ReplayPublic)
def read_replay(
    job_id: str, session: SessionDep, tenant: TenantDep, settings: SettingsDep
) -> ReplayPublic:
    """Where a replay's tree diverges from the job it replays: per path, the first node."""
    job = get_job(session, job_id, tenant=tenant)
    if not job.replay:
        raise NotFoundError(f"job {job_id} is not a replay (POST /v1/jobs/{job_id}/replay)")
    report = dataclasses.asdict(replay_report(session, job))
    endpoint = settings.endpoints.get(job.endpoint)
    report["model"] = job.model or (endpoint.model if endpoint is not None else "")
    return ReplayPublic.model_validate(report)
