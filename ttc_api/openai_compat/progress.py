"""A running job's progress, as the streaming routes relay it.

:func:`job_progress` reads the job's events (the same feed as
``GET /v1/jobs/{id}/events``) until the job is finished, and notices a client that went
away, so that its job can be cancelled.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import Request

from ttc_api.sse import poll
from ttc_core.store.db import Database
from ttc_core.store.models import TERMINAL_STATUSES

#: How often a stream looks for new events, and the silence after which it sends a
#: keep-alive (an SSE comment, which every client skips).
POLL_S = 0.1
KEEPALIVE_S = 10.0
PAGE = 500


class Disconnected(Exception):
    """The client of a stream went away before its job finished."""


def progress_frame(kind: str, seq: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"event": kind, "seq": seq, **data}


async def job_progress(
    request: Request, db: Database, job_id: str, *, poll_s: float = POLL_S
) -> AsyncIterator[dict[str, Any] | None]:
    """Each event of the job while it runs (a dict), or None when a keep-alive is due;
    ends once the job is finished. Raises :class:`Disconnected` when the client is gone."""
    after = 0
    quiet_since = time.monotonic()
    while True:
        status, events = await anyio.to_thread.run_sync(poll, db, job_id, after, PAGE)
        for event in events:
            after = event.id
            yield progress_frame(event.kind, event.id, event.data)
        if status is None or status in TERMINAL_STATUSES:
            return
        if await request.is_disconnected():
            raise Disconnected
        now = time.monotonic()
        if events:
            quiet_since = now
        elif now - quiet_since >= KEEPALIVE_S:
            yield None
            quiet_since = now
        if len(events) < PAGE:
            await anyio.sleep(poll_s)
