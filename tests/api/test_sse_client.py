"""The typed client's SSE reader on its own: it resumes with ``Last-Event-ID`` after a
connection drops mid-stream, follows the server's ``retry`` hint, and stops at the job's
final status. The server side is an ``httpx.MockTransport`` that really breaks the
response body half-way (the integration tests in ``test_sse.py`` run the real server)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from ttc_api.client import APIError, TTCClient

EVENTS = [
    {"id": 1, "kind": "job_created", "data": {}, "created_at": "2026-11-29T04:00:00Z"},
    {
        "id": 2,
        "kind": "status_changed",
        "data": {"status": "running"},
        "created_at": "2026-11-29T04:00:01Z",
    },
    {"id": 3, "kind": "nodes_added", "data": {"nodes": 4}, "created_at": "2026-11-29T04:00:02Z"},
    {
        "id": 4,
        "kind": "status_changed",
        "data": {"status": "succeeded"},
        "created_at": "2026-11-29T04:00:03Z",
    },
]


def _message(event: dict[str, object]) -> bytes:
    return f"id: {event['id']}\nevent: {event['kind']}\ndata: {json.dumps(event)}\n\n".encode()


class _Dropping(httpx.SyncByteStream):
    """Sends some messages, then fails like a connection reset."""

    def __init__(self, chunks: list[bytes], then_fail: bool) -> None:
        self.chunks = chunks
        self.then_fail = then_fail

    def __iter__(self) -> Iterator[bytes]:
        yield b"retry: 1\n\n"
        yield from self.chunks
        if self.then_fail:
            yield b'id: 3\nevent: nodes_added\ndata: {"id": 3,\n'  # cut before its end
            raise httpx.ReadError("connection reset by peer")


def test_reader_resumes_after_a_dropped_connection() -> None:
    seen_ids: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept"] == "text/event-stream"
        last = request.headers.get("last-event-id")
        seen_ids.append(last)
        after = int(last or 0)
        rest = [e for e in EVENTS if int(str(e["id"])) > after]
        first_try = len(seen_ids) == 1
        chunks = [_message(e) for e in (rest[:2] if first_try else rest)]
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=_Dropping(chunks, then_fail=first_try),
        )

    with TTCClient("http://ttc", transport=httpx.MockTransport(handler)) as client:
        events = list(client.iter_events("job-1"))
    assert [e.id for e in events] == [1, 2, 3, 4]
    assert seen_ids == [None, "2"]  # the second connection resumed after id 2


def test_reader_raises_problems_and_gives_up_on_a_dead_server() -> None:
    def not_found(_: httpx.Request) -> httpx.Response:
        problem = {"title": "Not found", "status": 404, "detail": "no job job-1"}
        return httpx.Response(
            404, json=problem, headers={"content-type": "application/problem+json"}
        )

    with (
        TTCClient("http://ttc", transport=httpx.MockTransport(not_found)) as client,
        pytest.raises(APIError) as caught,
    ):
        list(client.iter_events("job-1"))
    assert caught.value.status == 404 and caught.value.detail == "no job job-1"

    calls = 0

    def refused(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("connection refused", request=request)

    with (
        TTCClient("http://ttc", transport=httpx.MockTransport(refused)) as client,
        pytest.raises(ConnectionError),
    ):
        list(client.iter_events("job-1", max_reconnects=2, retry_s=0))
    assert calls == 3
