"""The Responses API over jobs: ``POST /v1/responses`` (``background: true`` answers at
once with ``queued``), ``GET /v1/responses/{id}``, ``POST /v1/responses/{id}/cancel``.

A response id is ``resp_`` and its job's id in hex: the response *is* the job, kept,
billed and browsable like any other (``ttc.job_id``, ``ttc.tree_url``).
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ttc_api.deps import PrincipalDep
from ttc_api.openai_compat.answering import (
    CLIENT_CLOSED,
    JOB_ROUTE_RESPONSES,
    STREAM_HEADERS,
    caller_tenant,
)
from ttc_api.openai_compat.envelope import JOB_HEADER, job_id_of
from ttc_api.openai_compat.errors import OPENAI_ERRORS, OpenAIError
from ttc_api.openai_compat.jobs import cancel, cancel_abandoned, start_job, wait_for_job
from ttc_api.openai_compat.mapping import Standard, job_request, resolve_model
from ttc_api.openai_compat.options import TTCOptions
from ttc_api.openai_compat.outcome import outcome
from ttc_api.openai_compat.requests import MessageIn, to_messages
from ttc_api.openai_compat.response_object import RESPONSE_PREFIX, response_object
from ttc_api.openai_compat.responses_stream import ResponseStream, response_stream
from ttc_api.services import get_job
from ttc_core.service.submission import ChatMessage
from ttc_core.store.db import Database
from ttc_core.store.models import Job

router = APIRouter(tags=["openai"], responses=OPENAI_ERRORS)


class Reasoning(BaseModel):
    model_config = ConfigDict(extra="allow")

    effort: Literal["minimal", "low", "medium", "high"] | None = None


class InputMessage(MessageIn):
    type: str = "message"


class ResponseCreate(BaseModel):
    """``POST /v1/responses``."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(max_length=200, description="strategy@endpoint, or an endpoint name")
    input: str | list[InputMessage]
    instructions: str | None = None
    background: bool | None = False
    stream: bool | None = False
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    reasoning: Reasoning | None = None
    tools: list[Any] | None = None
    previous_response_id: str | None = None
    ttc: TTCOptions | None = Field(default=None, description="how ttc searches (extra_body)")

    def messages(self) -> list[ChatMessage]:
        system = (
            [ChatMessage(role="system", content=self.instructions)] if self.instructions else []
        )
        if isinstance(self.input, str):
            return [*system, ChatMessage(role="user", content=self.input)]
        for i, item in enumerate(self.input):
            if item.type != "message":
                raise OpenAIError(
                    400,
                    f"input item type {item.type!r} is not supported: only messages",
                    param=f"input.{i}.type",
                    code="unsupported_value",
                )
        return [*system, *to_messages(list(self.input), "input")]

    def refuse_unsupported(self) -> None:
        if self.tools:
            raise OpenAIError(
                400, "tools are not supported", param="tools", code="unsupported_parameter"
            )
        if self.previous_response_id:
            raise OpenAIError(
                400,
                "previous_response_id is not supported: send the conversation as input",
                param="previous_response_id",
                code="unsupported_parameter",
            )

    def standard(self) -> Standard:
        limit = None
        if self.max_output_tokens is not None:
            limit = (self.max_output_tokens, "max_output_tokens")
        return Standard(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=limit,
            reasoning_effort=self.reasoning.effort if self.reasoning else None,
        )


def _load(db: Database, job_id: str, tenant: str | None) -> Job:
    with db.session() as session:
        job = get_job(session, job_id, tenant=tenant)
        session.expunge(job)
        return job


async def _job_of(request: Request, response_id: str, principal: PrincipalDep) -> Job:
    job_id = job_id_of(response_id, RESPONSE_PREFIX)
    if job_id is None:
        raise OpenAIError(404, f"no response {response_id}", param="response_id", code="not_found")
    return await anyio.to_thread.run_sync(
        _load, request.app.state.db, job_id, caller_tenant(principal)
    )


async def _answer(request: Request, job: Job, background: bool | None) -> JSONResponse:
    finished, answers = await outcome(request.app.state.db, job.id, 1)
    body = response_object(request, finished, answers, background=background)
    return JSONResponse(body, headers={JOB_HEADER: job.id})


@router.post("/v1/responses", response_model=None, responses=JOB_ROUTE_RESPONSES)
async def create_response(
    body: ResponseCreate, request: Request, principal: PrincipalDep
) -> Response:
    """OpenAI response; `background: true` answers at once with status `queued`."""
    ref = resolve_model(body.model, request.app.state.settings)
    body.refuse_unsupported()
    job = job_request(
        ref, body.ttc, body.standard(), messages=body.messages(), prompt_param="input"
    )
    db = request.app.state.db
    tenant = caller_tenant(principal)
    job_id = await start_job(request, principal, job)
    created = await anyio.to_thread.run_sync(_load, db, job_id, None)
    background = bool(body.background)
    if body.stream:
        req = ResponseStream(job_id, tenant, background, job.options.keep)
        return StreamingResponse(
            response_stream(request, db, req, created),
            media_type="text/event-stream",
            headers={JOB_HEADER: job_id, **STREAM_HEADERS},
        )
    if background:
        body_out = response_object(request, created, [], background=True, status="queued")
        return JSONResponse(body_out, headers={JOB_HEADER: job_id})
    keep = job.options.keep
    status = await wait_for_job(db, job_id, gone=None if keep else request.is_disconnected)
    if status is None:
        await cancel_abandoned(db, job_id, tenant)
        return Response(status_code=CLIENT_CLOSED)
    return await _answer(request, created, False)


@router.get("/v1/responses/{response_id}", response_model=None)
async def read_response(response_id: str, request: Request, principal: PrincipalDep) -> Response:
    """A response's status (queued, in_progress, completed, failed, cancelled) and output."""
    return await _answer(request, await _job_of(request, response_id, principal), None)


@router.post("/v1/responses/{response_id}/cancel", response_model=None)
async def cancel_response(response_id: str, request: Request, principal: PrincipalDep) -> Response:
    """Cancel a response's job. Idempotent."""
    job = await _job_of(request, response_id, principal)
    await anyio.to_thread.run_sync(cancel, request.app.state.db, job.id, caller_tenant(principal))
    return await _answer(request, job, None)
