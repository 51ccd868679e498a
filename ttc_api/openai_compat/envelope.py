"""The OpenAI envelopes of a finished job: ``usage``, the ``ttc`` object, and the
``chat.completion`` and ``text_completion`` bodies."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request

from ttc_api.openai_compat.ranking import RankedAnswer
from ttc_core.store.models import Job

#: The response header that names the job behind a response.
JOB_HEADER = "ttc-job-id"


def short_id(job_id: str) -> str:
    """A job id as OpenAI-style ids carry it (hex, no dashes)."""
    return uuid.UUID(job_id).hex


def job_id_of(object_id: str, prefix: str) -> str | None:
    """The job id inside ``<prefix><hex>``, or None for an id that is not one of ours."""
    if not object_id.startswith(prefix):
        return None
    try:
        return str(uuid.UUID(hex=object_id[len(prefix) :]))
    except ValueError:
        return None


def tree_url(request: Request, job_id: str) -> str:
    """The job's tree in the admin UI."""
    return str(request.url_for("tree_page", job_id=job_id))


def created(job: Job) -> int:
    return int(job.created_at.timestamp())


def chat_usage(job: Job) -> dict[str, Any]:
    """The job's aggregate usage, all samples and scoring calls included."""
    return {
        "prompt_tokens": job.prompt_tokens,
        "completion_tokens": job.completion_tokens,
        "total_tokens": job.prompt_tokens + job.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": job.thinking_tokens or 0},
    }


def ttc_object(request: Request, job: Job, **extra: Any) -> dict[str, Any]:
    result = job.result or {}
    return {
        "job_id": job.id,
        "strategy": job.strategy,
        "status": job.status,
        "answer": result.get("answer"),
        "score": result.get("score"),
        "correct": result.get("correct"),
        "ended_by": result.get("ended_by"),
        "tree_url": tree_url(request, job.id),
        "requests": job.requests,
        "cost": round(job.cost, 8),
        **extra,
    }


def choice_ttc(answer: RankedAnswer) -> dict[str, Any]:
    return {
        "node_id": answer.node_id,
        "answer": answer.answer,
        "score": answer.score,
        "correct": answer.correct,
    }


def chat_completion(
    request: Request, job: Job, model: str, answers: list[RankedAnswer]
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{short_id(job.id)}",
        "object": "chat.completion",
        "created": created(job),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": a.text, "refusal": None},
                "logprobs": None,
                "finish_reason": a.finish_reason,
                "ttc": choice_ttc(a),
            }
            for i, a in enumerate(answers)
        ],
        "usage": chat_usage(job),
        "ttc": ttc_object(request, job),
    }


def text_completion(
    request: Request, job: Job, model: str, answers: list[RankedAnswer]
) -> dict[str, Any]:
    return {
        "id": f"cmpl-{short_id(job.id)}",
        "object": "text_completion",
        "created": created(job),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": i,
                "text": a.text,
                "logprobs": None,
                "finish_reason": a.finish_reason,
                "ttc": choice_ttc(a),
            }
            for i, a in enumerate(answers)
        ],
        "usage": chat_usage(job),
        "ttc": ttc_object(request, job),
    }
