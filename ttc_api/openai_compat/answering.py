"""The flow shared by chat and text completions: submit the job, then stream it or wait
for it and answer with the envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from ttc_api.openai_compat.envelope import JOB_HEADER
from ttc_api.openai_compat.errors import JOB_ERRORS
from ttc_api.openai_compat.jobs import cancel_abandoned, start_job, wait_for_job
from ttc_api.openai_compat.mapping import JobRequest
from ttc_api.openai_compat.outcome import job_error, outcome
from ttc_api.openai_compat.ranking import RankedAnswer
from ttc_api.openai_compat.streaming import StreamRequest, completion_stream
from ttc_core.service.auth import Principal
from ttc_core.store.models import Job

Envelope = Callable[[Request, Job, str, list[RankedAnswer]], dict[str, Any]]

#: What nginx and similar proxies need to pass a stream through unbuffered.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: OpenAPI entries of a route that runs a job: its errors, and the stream it may answer.
JOB_ROUTE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **JOB_ERRORS,
    200: {
        "description": "The answer; with `stream: true`, a `text/event-stream` of chunks",
        "headers": {JOB_HEADER: {"description": "the job", "schema": {"type": "string"}}},
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    },
}
#: The status of a request whose client went away (nginx's; nobody reads it).
CLIENT_CLOSED = 499


def caller_tenant(principal: Principal) -> str | None:
    return None if principal.admin else principal.tenant


async def answer_completion(
    request: Request,
    principal: Principal,
    job: JobRequest,
    *,
    model: str,
    stream: bool,
    include_usage: bool,
    kind: Literal["chat", "text"],
    envelope: Envelope,
) -> Response:
    db = request.app.state.db
    job_id = await start_job(request, principal, job)
    tenant = caller_tenant(principal)
    keep = job.options.keep
    if stream:
        req = StreamRequest(job_id, tenant, model, job.choices, keep, include_usage, kind)
        return StreamingResponse(
            completion_stream(request, db, req),
            media_type="text/event-stream",
            headers={JOB_HEADER: job_id, **STREAM_HEADERS},
        )
    status = await wait_for_job(db, job_id, gone=None if keep else request.is_disconnected)
    if status is None:
        await cancel_abandoned(db, job_id, tenant)
        return Response(status_code=CLIENT_CLOSED)
    finished, answers = await outcome(db, job_id, job.choices)
    if not answers:
        raise job_error(finished)
    return JSONResponse(envelope(request, finished, model, answers), headers={JOB_HEADER: job_id})
