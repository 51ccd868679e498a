"""``POST /v1/completions``: a text completion (a prompt string) answered by a search job."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ttc_api.deps import PrincipalDep
from ttc_api.openai_compat.answering import JOB_ROUTE_RESPONSES, answer_completion
from ttc_api.openai_compat.envelope import text_completion
from ttc_api.openai_compat.errors import OPENAI_ERRORS, OpenAIError
from ttc_api.openai_compat.mapping import job_request, resolve_model
from ttc_api.openai_compat.requests import CompletionCreate

router = APIRouter(tags=["openai"], responses=OPENAI_ERRORS)


@router.post("/v1/completions", response_model=None, responses=JOB_ROUTE_RESPONSES)
async def create_completion(
    body: CompletionCreate, request: Request, principal: PrincipalDep
) -> Response:
    """OpenAI text completion; the model is strategy@endpoint, the search is in `ttc`."""
    ref = resolve_model(body.model, request.app.state.settings)
    body.refuse_unsupported()
    if body.echo or body.suffix:
        param = "echo" if body.echo else "suffix"
        raise OpenAIError(
            400, f"{param} is not supported", param=param, code="unsupported_parameter"
        )
    job = job_request(
        ref, body.ttc, body.standard(), prompt=body.prompt_text(), prompt_param="prompt"
    )
    return await answer_completion(
        request,
        principal,
        job,
        model=body.model,
        stream=bool(body.stream),
        include_usage=body.include_usage,
        kind="text",
        envelope=text_completion,
    )
