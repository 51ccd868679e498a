"""Event order under concurrency, and the SSE stream on its own (embedded SQLite).

``job_events.id`` is taken at insert and seen at commit, so concurrent writers make id
order and visibility order differ; ``seq`` is handed out under the job's row lock and
commits in order. The Postgres test runs several writers against one job while a reader
polls: every page it reads must continue its cursor with no hole, i.e. it never sees an
event whose predecessor is still to come.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tests.helpers import fresh_postgres
from ttc_api.app import create_app
from ttc_api.event_hub import EventHub
from ttc_api.sse import event_stream, events_after, wants_event_stream
from ttc_cli.migrate import upgrade
from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job, JobStatus
from ttc_core.store.queries import append_event

WRITERS = 6
EVENTS_EACH = 40


def _new_job(db: Database) -> str:
    job_id = str(uuid.uuid4())
    with db.transaction() as session:
        session.add(Job(id=job_id, strategy="best_of_n", endpoint="sim", status=JobStatus.running))
    return job_id


@pytest.fixture
def pg() -> Iterator[Database]:
    with fresh_postgres() as url:
        yield Database(url)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'ttc.db'}"
    upgrade(url)
    return Database(url)


@pytest.mark.integration
def test_concurrent_appends_are_seen_in_order_without_holes(pg: Database) -> None:
    job_id = _new_job(pg)
    neighbour = _new_job(pg)  # its events interleave the global ids
    errors: list[BaseException] = []
    holes: list[tuple[int, list[int]]] = []
    pages = 0

    def writer(index: int, target: str) -> None:
        rng = random.Random(index)
        try:
            for n in range(EVENTS_EACH):
                with pg.transaction() as session:
                    append_event(session, target, "tick", writer=index, n=n)
                    # Stay in the transaction a moment: a later writer of the same job
                    # has to wait for this commit, and one of another job does not.
                    time.sleep(rng.random() * 0.003)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(i, job_id if i < WRITERS else neighbour))
        for i in range(WRITERS + 2)
    ]
    for thread in threads:
        thread.start()
    cursor = 0
    deadline = time.monotonic() + 120
    while cursor < WRITERS * EVENTS_EACH and time.monotonic() < deadline:
        with pg.session() as session:
            seqs = [e.id for e in events_after(session, job_id, cursor, 1000)]
        pages += 1
        if seqs != list(range(cursor + 1, cursor + 1 + len(seqs))):
            holes.append((cursor, seqs))
        if seqs:
            cursor = seqs[-1]
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert not holes, holes[:3]
    assert cursor == WRITERS * EVENTS_EACH
    assert pages > 1  # the reader really ran alongside the writers
    with pg.session() as session:
        every = events_after(session, job_id, 0, 10_000)
        assert [e.id for e in every] == list(range(1, WRITERS * EVENTS_EACH + 1))
        per_writer: dict[int, list[int]] = {}
        for event in every:
            per_writer.setdefault(event.data["writer"], []).append(event.data["n"])
        assert per_writer == {i: list(range(EVENTS_EACH)) for i in range(WRITERS)}
        theirs = events_after(session, neighbour, 0, 10_000)
        assert [e.id for e in theirs] == list(range(1, 2 * EVENTS_EACH + 1))
        assert pg.engine.dialect.name == "postgresql"
        assert session.get(Job, job_id).event_seq == WRITERS * EVENTS_EACH  # type: ignore[union-attr]


async def _collect(
    db: Database, job_id: str, after: int, poll_s: float = 0.05, **kw: float
) -> list[str]:
    hub = EventHub(db, poll_s=poll_s, auth_check_s=1.0)
    try:
        return [message async for message in event_stream(hub, job_id, after, **kw)]
    finally:
        await hub.close()


def test_stream_on_sqlite_follows_the_job_to_its_end(sqlite_db: Database) -> None:
    job_id = _new_job(sqlite_db)
    with sqlite_db.transaction() as session:
        append_event(session, job_id, "job_created", strategy="best_of_n", endpoint="sim")

    def finish_later() -> None:
        time.sleep(0.3)  # quiet for longer than the keep-alive below
        for n in range(3):
            with sqlite_db.transaction() as session:
                append_event(session, job_id, "nodes_added", nodes=n)
        with sqlite_db.transaction() as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.status = JobStatus.succeeded
            append_event(session, job_id, "status_changed", status="succeeded")

    worker = threading.Thread(target=finish_later)
    worker.start()
    messages = anyio.run(lambda: _collect(sqlite_db, job_id, 0, poll_s=0.02, keepalive_s=0.1))
    worker.join()
    assert messages[0] == "retry: 2000\n\n"
    assert ": keep-alive\n\n" in messages
    ids = [m.split("\n")[0] for m in messages if m.startswith("id: ")]
    assert ids == [f"id: {n}" for n in range(1, 6)]
    assert messages[-1].startswith("id: 5\nevent: status_changed\ndata: {")

    # Resuming after 3 gives 4 and 5 only, then ends: the job is finished.
    again = anyio.run(lambda: _collect(sqlite_db, job_id, 3, poll_s=0.02))
    assert [m.split("\n")[0] for m in again[1:]] == ["id: 4", "id: 5"]
    # After the last one: the retry hint and nothing else.
    assert anyio.run(lambda: _collect(sqlite_db, job_id, 5)) == ["retry: 2000\n\n"]


def test_stream_of_a_deleted_job_ends(sqlite_db: Database) -> None:
    assert anyio.run(lambda: _collect(sqlite_db, "gone", 0)) == ["retry: 2000\n\n"]


@pytest.mark.parametrize(
    ("accept", "stream"),
    [
        (None, False),
        ("application/json", False),
        ("*/*", False),
        ("text/event-stream", True),
        ("text/event-stream, application/json;q=0.5", True),
        ("application/json, text/event-stream;q=0.5", False),
        ("text/event-stream;q=0", False),
        ("text/event-stream;q=bad", False),
    ],
)
def test_accept_negotiation(accept: str | None, stream: bool) -> None:
    assert wants_event_stream(accept) is stream


def test_stream_stops_when_the_client_disconnects(sqlite_db: Database) -> None:
    """The real app over raw ASGI: a client that goes away ends the response (and its
    polling) although the job is still running."""
    job_id = _new_job(sqlite_db)
    with sqlite_db.transaction() as session:
        append_event(session, job_id, "job_created", strategy="best_of_n", endpoint="sim")
    app = create_app(Settings(database_url=sqlite_db.url, executor="local", auth_enabled=False))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/v1/jobs/{job_id}/events",
        "raw_path": f"/v1/jobs/{job_id}/events".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"ttc"), (b"accept", b"text/event-stream")],
        "client": ("127.0.0.1", 5000),
        "server": ("ttc", 80),
    }
    sent: list[dict[str, object]] = []

    async def run() -> None:
        gone = anyio.Event()
        requested = False

        async def receive() -> dict[str, object]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and b"id: 1" in message["body"]:  # type: ignore[operator]
                gone.set()  # the client has its first event and leaves

        with anyio.fail_after(10):
            await app(scope, receive, send)

    anyio.run(run)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    bodies = b"".join(m.get("body", b"") for m in sent[1:])  # type: ignore[misc]
    assert b"id: 1\nevent: job_created\n" in bodies
    with sqlite_db.session() as session:
        assert session.get(Job, job_id).status == JobStatus.running  # type: ignore[union-attr]
