"""A job's progress events as a feed: pages for polling, and a Server-Sent Events stream.

Both read ``job_events`` by ``seq`` (1, 2, 3... per job, in commit order; see
``ttc_core.store.append_event``), so a cursor or a ``Last-Event-ID`` resumes exactly after
the last event seen: no gaps, no duplicates.

The stream polls the database (every ``POLL_S``, one short session per poll, run in a
worker thread because the app's SQLAlchemy is synchronous) instead of listening on Redis:
it works the same in embedded mode on SQLite, and holds no connection while it waits.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
from sqlalchemy import select
from sqlalchemy.orm import Session

from ttc_api.schemas import EventPublic
from ttc_core.db import Database
from ttc_core.models import TERMINAL_STATUSES, Job, JobEvent

#: How often a stream looks for new events.
POLL_S = 0.2
#: A comment line after this much silence, so proxies and clients keep the connection.
KEEPALIVE_S = 15.0
#: The reconnection delay the stream suggests to clients (``retry:``), in milliseconds.
RETRY_MS = 2000
#: Events read per poll; a stream drains a backlog page by page without sleeping.
PAGE = 500

EVENT_STREAM = "text/event-stream"


def events_after(session: Session, job_id: str, after: int, limit: int) -> list[EventPublic]:
    """The job's events with ``seq > after``, in order (``id`` is the ``seq``)."""
    rows = session.execute(
        select(JobEvent.seq, JobEvent.kind, JobEvent.data, JobEvent.created_at)
        .where(JobEvent.job_id == job_id, JobEvent.seq > after)
        .order_by(JobEvent.seq)
        .limit(limit)
    ).all()
    return [
        EventPublic(id=seq, kind=kind, data=data, created_at=at) for seq, kind, data, at in rows
    ]


def poll(db: Database, job_id: str, after: int, limit: int) -> tuple[str | None, list[EventPublic]]:
    """The job's status, then its events after ``after`` (None: the job is gone).

    Status first: a terminal status commits together with its ``status_changed`` event,
    so when the status read says terminal, the events read after it include that event.
    """
    with db.session() as session:
        status = session.scalar(select(Job.status).where(Job.id == job_id))
        return status, events_after(session, job_id, after, limit) if status else []


def format_event(event: EventPublic) -> str:
    """One SSE message; ``data`` is the same JSON object the polling list holds."""
    return f"id: {event.id}\nevent: {event.kind}\ndata: {event.model_dump_json()}\n\n"


def wants_event_stream(accept: str | None) -> bool:
    """Whether an ``Accept`` header names ``text/event-stream`` at least as high as JSON
    (wildcards do not count: a plain ``*/*`` client gets JSON)."""
    if not accept:
        return False
    quality: dict[str, float] = {}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        quality[media.lower()] = q
    stream = quality.get(EVENT_STREAM, 0.0)
    return stream > 0 and stream >= quality.get("application/json", 0.0)


async def event_stream(
    db: Database,
    job_id: str,
    after: int,
    *,
    poll_s: float = POLL_S,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[str]:
    """SSE messages of a job from ``seq > after`` until it is finished.

    Ends once the job is terminal and every event committed with (or before) its final
    status has been sent. Events that land later (results of expansions still in flight
    when a job was cancelled) stay readable by polling or by reconnecting. The server
    cancels this generator when the client disconnects.
    """
    yield f"retry: {RETRY_MS}\n\n"
    quiet_since = time.monotonic()
    while True:
        status, events = await anyio.to_thread.run_sync(poll, db, job_id, after, PAGE)
        for event in events:
            yield format_event(event)
            after = event.id
        if status is None or (status in TERMINAL_STATUSES and len(events) < PAGE):
            return
        if len(events) == PAGE:
            continue  # a backlog: read on at once
        now = time.monotonic()
        if events:
            quiet_since = now
        elif now - quiet_since >= keepalive_s:
            yield ": keep-alive\n\n"
            quiet_since = now
        await anyio.sleep(poll_s)
