"""``POST /v1/chat/completions``: a chat completion answered by a search job."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ttc_api.deps import PrincipalDep
from ttc_api.openai_compat.answering import JOB_ROUTE_RESPONSES, answer_completion
from ttc_api.openai_compat.envelope import chat_completion
from ttc_api.openai_compat.errors import OPENAI_ERRORS
from ttc_api.openai_compat.mapping import job_request, resolve_model
from ttc_api.openai_compat.requests import ChatCompletionCreate, to_messages

router = APIRouter(tags=["openai"], responses=OPENAI_ERRORS)


@router.post("/v1/chat/completions", response_model=None, responses=JOB_ROUTE_RESPONSES)
async def create_chat_completion(
    body: ChatCompletionCreate, request: Request, principal: PrincipalDep
) -> Response:
    """OpenAI chat completion; the model is strategy@endpoint, the search is in `ttc`."""
    ref = resolve_model(body.model, request.app.state.settings)
    body.refuse_unsupported()
    job = job_request(ref, body.ttc, body.standard(), messages=to_messages(body.messages))
    return await answer_completion(
        request,
        principal,
        job,
        model=body.model,
        stream=bool(body.stream),
        include_usage=body.include_usage,
        kind="chat",
        envelope=chat_completion,
    )
