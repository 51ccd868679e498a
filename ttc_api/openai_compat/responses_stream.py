"""``stream: true`` on the Responses API: OpenAI's typed events over a job.

``response.created`` (queued), ``response.in_progress`` when the job starts and again with
each progress event (the response object then carries ``ttc.progress``), then the answer
as ``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta``..., ``response.output_text.done``,
``response.content_part.done``, ``response.output_item.done`` and ``response.completed``;
a job that fails or is cancelled ends with ``response.failed``. A client that disconnects
cancels the job, unless the request was ``background`` or said ``ttc.keep``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from ttc_api.openai_compat.jobs import cancel_abandoned
from ttc_api.openai_compat.outcome import outcome
from ttc_api.openai_compat.progress import Disconnected, job_progress
from ttc_api.openai_compat.response_object import message_item, output_text, response_object
from ttc_api.openai_compat.streaming import pieces
from ttc_core.store.db import Database
from ttc_core.store.models import Job


@dataclass(frozen=True)
class ResponseStream:
    job_id: str
    tenant: str | None
    background: bool
    keep: bool


class _Events:
    def __init__(self) -> None:
        self.seq = 0

    def event(self, kind: str, **data: Any) -> str:
        self.seq += 1
        body = {"type": kind, "sequence_number": self.seq, **data}
        return f"event: {kind}\ndata: {json.dumps(body)}\n\n"


async def response_stream(
    request: Request, db: Database, req: ResponseStream, job: Job
) -> AsyncIterator[str]:
    """The SSE body of a streaming response over ``req.job_id`` (``job`` as created)."""
    events = _Events()
    done = False
    bg = req.background
    try:
        current = response_object(request, job, [], background=bg, status="queued")
        yield events.event("response.created", response=current)
        started = False
        async for frame in job_progress(request, db, req.job_id):
            if frame is None:
                yield ": keep-alive\n\n"
                continue
            if frame["event"] == "status_changed" and frame.get("status") != "running":
                continue  # the end is told by the events below
            started = True
            live = {**current, "status": "in_progress"}
            live["ttc"] = {**current["ttc"], "status": "running", "progress": frame}
            yield events.event("response.in_progress", response=live)
        finished, answers = await outcome(db, req.job_id, 1)
        final = response_object(request, finished, answers, background=bg)
        if not answers:
            yield events.event("response.failed", response=final)
            done = True
            return
        if not started:
            yield events.event(
                "response.in_progress", response={**final, "status": "in_progress", "output": []}
            )
        answer = answers[0]
        item = message_item(answer, done=False)
        at = {"item_id": item["id"], "output_index": 0}
        yield events.event("response.output_item.added", output_index=0, item=item)
        yield events.event(
            "response.content_part.added", **at, content_index=0, part=output_text("")
        )
        for piece in pieces(answer.text):
            yield events.event(
                "response.output_text.delta", **at, content_index=0, delta=piece, logprobs=[]
            )
        yield events.event(
            "response.output_text.done", **at, content_index=0, text=answer.text, logprobs=[]
        )
        yield events.event(
            "response.content_part.done", **at, content_index=0, part=output_text(answer.text)
        )
        yield events.event("response.output_item.done", output_index=0, item=message_item(answer))
        yield events.event("response.completed", response=final)
        done = True
    except Disconnected:
        pass
    finally:
        if not done and not (req.keep or req.background):
            await cancel_abandoned(db, req.job_id, req.tenant)
