"""Postgres's one-statement bulk insert (``ttc_core.store.bulk_insert``) stores exactly
what a Core executemany stores: text cleaned of NULs and lone surrogates, JSON, NULLs,
ints where floats go, aware datetimes, Python-side defaults for left-out columns; a row
already there is left as it is."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from tests.helpers import fresh_postgres
from ttc_core.store.bulk_insert import unnest_insert
from ttc_core.store.db import Database
from ttc_core.store.models import Job, Node
from ttc_core.store.queries import insert_ignoring_duplicates


@pytest.fixture
def db() -> Iterator[Database]:
    with fresh_postgres() as url:
        database = Database(url)
        yield database
        database.engine.dispose()


def _rows(job_id: str) -> list[dict[str, Any]]:
    at = dt.datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=dt.UTC)
    rows = []
    for i in range(5):
        rows.append(
            {
                "id": f"{job_id}-{i}",
                "job_id": job_id,
                "parent_id": None if i == 0 else f"{job_id}-0",
                "batch_id": None if i == 0 else "b1",
                "depth": 0 if i == 0 else 1,
                "child_index": i,
                "role": "root" if i == 0 else "sample",
                "text": ["plain", "nul\x00inside", "lone \ud800 surrogate", "ünïcödé 🙂", ""][i],
                "status": "done",
                "is_terminal": i % 2 == 1,
                "answer": None if i < 2 else str(i),
                "score": [None, 1, 0.25, 0, 1.0][i],  # ints where floats go
                "step_score": None,
                "correct": [None, True, False, None, True][i],
                "prompt_tokens": 10 * i,
                "completion_tokens": 2**20 if i == 4 else i,
                "finish_reason": "stop",
                "latency_ms": None if i == 0 else 12.5,
                "seed": 2**40 + i,
                "meta": {} if i == 0 else {"notes": {"nul": "a\x00b"}, "list": [1, 2.5, None]},
                "request_id": None,
                "cached": False,
                "created_at": at,
            }
        )
    return rows


def _stored(db: Database, job_id: str) -> list[tuple[Any, ...]]:
    with db.session() as session:
        nodes = session.scalars(select(Node).where(Node.job_id == job_id).order_by(Node.id))
        columns = [c.key for c in Node.__table__.columns]
        return [tuple(getattr(n, c) for c in columns) for n in nodes]


def _job(db: Database, job_id: str) -> None:
    with db.transaction() as session:
        session.add(Job(id=job_id, tenant="t", strategy="best_of_n", endpoint="sim", params={}))


def test_the_unnest_insert_stores_what_an_executemany_stores(db: Database) -> None:
    _job(db, "j1")
    rows = _rows("j1")
    with db.engine.begin() as conn:
        conn.execute(insert_ignoring_duplicates(Node, "postgresql"), rows)
    expected = _stored(db, "j1")
    with db.engine.begin() as conn:
        conn.execute(delete(Node).where(Node.job_id == "j1"))
    with db.engine.begin() as conn:
        assert unnest_insert(conn, db.engine.dialect, Node.__table__, rows)  # type: ignore[arg-type]
    assert _stored(db, "j1") == expected
    assert "\x00" not in "".join(str(r) for r in expected)  # cleaned on the way in

    # A row already there is left as it is; the new one goes in.
    again = [{**rows[1], "text": "changed"}, {**rows[1], "id": "j1-9", "child_index": 9}]
    with db.engine.begin() as conn:
        assert unnest_insert(conn, db.engine.dialect, Node.__table__, again)  # type: ignore[arg-type]
    stored = {row[0]: row for row in _stored(db, "j1")}
    assert stored["j1-1"] == {r[0]: r for r in expected}["j1-1"]
    assert "j1-9" in stored


def test_left_out_columns_get_their_defaults_and_mixed_keys_are_refused(db: Database) -> None:
    _job(db, "j2")
    row = {k: v for k, v in _rows("j2")[0].items() if k not in ("meta", "created_at", "status")}
    with db.engine.begin() as conn:
        assert unnest_insert(conn, db.engine.dialect, Node.__table__, [row])  # type: ignore[arg-type]
        other = {**_rows("j2")[1]}
        assert not unnest_insert(conn, db.engine.dialect, Node.__table__, [row, other])  # type: ignore[arg-type]
    with db.session() as session:
        node = session.get_one(Node, "j2-0")
        assert node.meta == {} and node.status == "done"
        assert node.created_at is not None and node.created_at.tzinfo is not None
