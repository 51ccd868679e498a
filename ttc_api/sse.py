"""A job's progress events as a feed: pages for polling, and a Server-Sent Events stream.

Both read ``job_events`` by ``seq`` (1, 2, 3... per job, in commit order; see
``ttc_core.store.queries.append_event``), so a cursor or a ``Last-Event-ID`` resumes exactly after
the last event seen: no gaps, no duplicates.

Streams do not poll the database each on their own: one poller per API process
(:class:`ttc_api.event_hub.EventHub`) reads for all of them. A stream ends when its job
has finished and every event up to the final status is sent, when it has had nothing to
send for ``TTC_SSE_IDLE_S`` (a paused job; the client may reconnect), or when its key is
revoked (checked every ``TTC_SSE_AUTH_CHECK_S``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy import select

from ttc_api.event_hub import PAGE, EventHub, events_after
from ttc_api.schemas import EventPublic
from ttc_core.observability import metrics
from ttc_core.store.db import Database
from ttc_core.store.models import Job

__all__ = [
    "EVENT_STREAM",
    "PAGE",
    "event_stream",
    "events_after",
    "format_event",
    "poll",
    "wants_event_stream",
]

#: A comment line after this much silence, so proxies and clients keep the connection.
KEEPALIVE_S = 15.0
#: The reconnection delay the stream suggests to clients (``retry:``), in milliseconds.
RETRY_MS = 2000

EVENT_STREAM = "text/event-stream"


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


@metrics.sse_stream
async def event_stream(
    hub: EventHub,
    job_id: str,
    after: int,
    *,
    keepalive_s: float = KEEPALIVE_S,
    idle_s: float | None = None,
    still_allowed: Callable[[], Awaitable[bool]] | None = None,
    check_every_s: float = 2.0,
    on_close: Callable[[], None] | None = None,
) -> AsyncIterator[str]:
    """SSE messages of a job from ``seq > after`` until it is finished (or idle for
    ``idle_s``, or ``still_allowed`` says no: the key was revoked).

    Events that land after a job's end (results of expansions still in flight when it
    was cancelled) stay readable by polling or by reconnecting. The server cancels this
    generator when the client disconnects; ``on_close`` runs however it ends.
    """
    try:
        yield f"retry: {RETRY_MS}\n\n"
        feed = hub.subscribe(job_id, after)
        try:
            last_event = last_sent = last_check = time.monotonic()
            while True:
                if after < feed.first_buffered - 1:
                    # Behind the shared buffer (a reconnect from long ago): read on alone.
                    backlog = await hub.read_backlog(job_id, after)
                    for event in backlog:
                        yield format_event(event)
                        after = event.id
                    if backlog:
                        last_event = last_sent = time.monotonic()
                        continue
                fresh = feed.since(after)
                for event in fresh:
                    yield format_event(event)
                    after = event.id
                if fresh:
                    last_event = last_sent = time.monotonic()
                if feed.done and after >= feed.last_seq:
                    return
                changed = feed.changed
                now = time.monotonic()
                deadlines = [last_sent + keepalive_s, last_check + check_every_s]
                if idle_s is not None:
                    deadlines.append(last_event + idle_s)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), max(0.0, min(deadlines) - now))
                now = time.monotonic()
                if idle_s is not None and now - last_event >= idle_s and not feed.since(after):
                    yield ": idle: closing (reconnect with Last-Event-ID to go on)\n\n"
                    return
                if still_allowed is not None and now - last_check >= check_every_s:
                    last_check = now
                    if not await still_allowed():
                        yield ": the API key was revoked\n\n"
                        return
                if now - last_sent >= keepalive_s:
                    yield ": keep-alive\n\n"
                    last_sent = now
        finally:
            hub.unsubscribe(feed)
    finally:
        if on_close is not None:
            on_close()
