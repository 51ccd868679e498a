"""The Responses API's ``response`` object for a job (``resp_<job id hex>``)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ttc_api.openai_compat.envelope import created, short_id, ttc_object
from ttc_api.openai_compat.mapping import PLAIN
from ttc_api.openai_compat.ranking import RankedAnswer
from ttc_core.store.models import Job, JobStatus

RESPONSE_PREFIX = "resp_"
MESSAGE_PREFIX = "msg_"

#: Job status -> response status (a paused job is still in progress: it can be resumed).
STATUS = {
    JobStatus.queued: "queued",
    JobStatus.running: "in_progress",
    JobStatus.paused: "in_progress",
    JobStatus.succeeded: "completed",
    JobStatus.failed: "failed",
    JobStatus.cancelled: "cancelled",
}


def response_id(job_id: str) -> str:
    return RESPONSE_PREFIX + short_id(job_id)


def model_of(job: Job) -> str:
    """The model name that stands for this job's strategy and endpoint."""
    return job.endpoint if job.strategy == PLAIN else f"{job.strategy}@{job.endpoint}"


def message_item(answer: RankedAnswer, *, done: bool = True) -> dict[str, Any]:
    node = short_id(answer.node_id) if answer.node_id else "answer"
    content = [output_text(answer.text)] if done else []
    return {
        "type": "message",
        "id": MESSAGE_PREFIX + node,
        "status": "completed" if done else "in_progress",
        "role": "assistant",
        "content": content,
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_usage(job: Job) -> dict[str, Any]:
    return {
        "input_tokens": job.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": job.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": job.thinking_tokens or 0},
        "total_tokens": job.prompt_tokens + job.completion_tokens,
    }


def response_object(
    request: Request,
    job: Job,
    answers: list[RankedAnswer],
    *,
    background: bool | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """The response as it stands (``status`` overrides the job's, for stream events)."""
    status = status or STATUS.get(JobStatus(job.status), "in_progress")
    error = None
    if status == "failed":
        error = {"code": "server_error", "message": job.error or "the search failed"}
    params = job.params or {}
    return {
        "id": response_id(job.id),
        "object": "response",
        "created_at": created(job),
        "status": status,
        "background": background,
        "error": error,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": params.get("max_tokens"),
        "model": model_of(job),
        "output": [message_item(a) for a in answers[:1]] if status == "completed" else [],
        "parallel_tool_calls": False,
        "previous_response_id": None,
        "reasoning": {"effort": (job.thinking or {}).get("effort"), "summary": None},
        "store": True,
        "temperature": params.get("temperature"),
        "text": {"format": {"type": "text"}},
        "tool_choice": "none",
        "tools": [],
        "top_p": params.get("top_p"),
        "truncation": "disabled",
        "usage": response_usage(job),
        "metadata": {},
        "ttc": ttc_object(request, job),
    }
