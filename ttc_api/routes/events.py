"""A job's progress events: polled as JSON pages, or streamed as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from ttc_api.deps import DatabaseDep, TenantDep
from ttc_api.problems import PROBLEM_RESPONSES
from ttc_api.schemas import EventsPublic
from ttc_api.services import get_job
from ttc_api.sse import EVENT_STREAM, event_stream, events_after, wants_event_stream

router = APIRouter(prefix="/v1/jobs", tags=["events"], responses=PROBLEM_RESPONSES)

EVENTS_DESCRIPTION = """\
A job's progress events, in order. Every event has an `id`: its sequence number in
the job (1, 2, 3, ... with no gaps, in commit order), `kind`, `data` and `created_at`.

**Polling (JSON)**: pass `after` = the last id seen; `next_cursor` is the id to pass
next (null when the page is empty).

**Streaming (SSE)**: send `Accept: text/event-stream`. Each message carries `id:`
(the sequence number), `event:` (the kind) and `data:` (the same JSON object as a
polled event); the stream suggests `retry: 2000`, sends a `: keep-alive` comment
after 15 s of silence, and closes after the job's final `status_changed` event. To
resume, reconnect with `Last-Event-ID` (or `after`): the stream goes on exactly after
that id, missing nothing and repeating nothing. `Last-Event-ID` wins over `after`.

Event kinds and their `data`:

| kind | data |
|---|---|
| `job_created` | `strategy`, `endpoint` |
| `status_changed` | `status` (`running`, `paused`, `succeeded`, `failed`, `cancelled`, \
`queued`); on the final one also `answer`, `score`, `ended_by`, `error`; `action` \
(`resume`, `expand`) when an operator caused it |
| `step_planned` | `step`, `batches`, `samples` (children the step will generate) |
| `nodes_added` | `batch_id`, `nodes` (saved by that expansion batch), `failed`, \
`completion_tokens` |
| `step_done` | `step`, `nodes` (in the tree), `frontier` (open leaves), `best_score`, \
`completion_tokens` (of the job so far) |
| `best_changed` | `step`, `node_id`, `answer`, `score`: the strategy's current pick \
moved |
| `node_pruned` | `node_id`, `nodes` (marked pruned) |
| `node_expand_requested` | `node_id`, `k` |
| `endpoint_trouble` | `endpoint`, `batch_id`, `failed_attempts`, `circuit_openings`, \
`circuit_open` |
| `reaped` | `what` (`driver step` or `expansion batch`), `batch_id` |
| `adaptive_stop` | `rule`, `stopped_by` (`pass`, `posterior`, `max_samples`), `samples`, \
`max_samples`, and the rule's figures (`passed`; or `confidence`, `probability`, \
`counts`, `settled`) |
| `auto_decision` | `band`, `strategy`, `params`, `max_tokens`, `difficulty`, `signal`, \
`probe_samples`, `agreement`, `mean_score`, `explain`: what `strategy: auto` chose |
| `auto_budget` | `band`, `max_tokens`: the band's token cap ended the job |
| `batch_allocated` | `batch_id` (the problem batch), `round`, `k` (samples added), `n` \
(the job's samples now) |
| `webhook_exhausted` | `delivery_id`, `event`, `attempts`, `last_status_code`, \
`last_error`: a webhook delivery gave up |

A manual expansion re-opens a step, so `step_done` may repeat a step number.
"""

SSE_EXAMPLE = (
    "retry: 2000\n\n"
    "id: 7\nevent: nodes_added\n"
    'data: {"id":7,"kind":"nodes_added","data":{"batch_id":"5b0c…","nodes":8,"failed":0,'
    '"completion_tokens":412},"created_at":"2026-11-29T04:12:03.120000Z"}\n\n'
    "id: 8\nevent: step_done\n"
    'data: {"id":8,"kind":"step_done","data":{"step":1,"nodes":9,"frontier":0,'
    '"best_score":1.0,"completion_tokens":412},"created_at":"2026-11-29T04:12:03.131000Z"}\n\n'
)

_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Events: a JSON page, or an SSE stream with `Accept: text/event-stream`",
        "content": {EVENT_STREAM: {"schema": {"type": "string"}, "example": SSE_EXAMPLE}},
    }
}


@router.get(
    "/{job_id}/events",
    response_model=EventsPublic,
    summary="Progress events (JSON polling or Server-Sent Events)",
    description=EVENTS_DESCRIPTION,
    responses=_STREAM_RESPONSE,
)
def read_events(
    job_id: str,
    request: Request,
    db: DatabaseDep,
    tenant: TenantDep,
    after: Annotated[int, Query(ge=0, description="only events with id > after")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="page size (polling)")] = 200,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, description="resume after this id (wins over after)"),
    ] = None,
) -> EventsPublic | StreamingResponse:
    """A page of events, or (``Accept: text/event-stream``) a stream until the job ends."""
    cursor = last_event_id if last_event_id is not None else after
    with db.session() as session:
        job = get_job(session, job_id, tenant=tenant)
        if not wants_event_stream(request.headers.get("accept")):
            events = events_after(session, job.id, cursor, limit)
            return EventsPublic(data=events, next_cursor=str(events[-1].id) if events else None)
    return StreamingResponse(
        event_stream(db, job_id, cursor),
        media_type=EVENT_STREAM,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
