"""The queries behind the UI on SQLite (embedded mode): node filters, subtree listing,
children counts, the answer distribution and the jobs list filtered by strategy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ttc_api.services import NodeFilter, list_nodes
from ttc_api.ui.data import HISTOGRAM_BINS, answer_distribution, list_jobs_page
from ttc_cli.migrate import upgrade
from ttc_core.errors import InputError
from ttc_core.search.tree import node_id_for
from ttc_core.store.db import Database
from ttc_core.store.models import Job, Node


def _job(job_id: str, strategy: str, created: dt.datetime, **extra: Any) -> Job:
    return Job(
        id=job_id,
        strategy=strategy,
        endpoint="sim",
        params={"n": 4},
        verifier={"kind": "math"},
        budget={},
        seed=0,
        status="succeeded",
        created_at=created,
        **extra,
    )


def _node(job_id: str, parent: str | None, index: int, depth: int, **extra: Any) -> Node:
    return Node(
        id=node_id_for(job_id, parent, index),
        job_id=job_id,
        parent_id=parent,
        depth=depth,
        child_index=index,
        role="root" if parent is None else "sample",
        text=extra.pop("text", f"sample {index}"),
        **extra,
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'ui.db'}"
    upgrade(url)
    yield Database(url)


@pytest.fixture
def tree(db: Database) -> dict[str, Any]:
    """A self-consistency job: root -> 6 samples; sample 0 has 2 children of its own."""
    now = dt.datetime.now(dt.UTC)
    votes = {"7": 3, "8": 2}
    job = _job("j1", "self_consistency", now, result={"answer": "7", "details": {"votes": votes}})
    root = _node("j1", None, 0, 0, text="prompt")
    samples = [
        _node("j1", root.id, 0, 1, text="100% sure: ANSWER 7", answer="7", score=1.0),
        _node("j1", root.id, 1, 1, text="ANSWER 7", answer="7", score=0.9, correct=True),
        _node("j1", root.id, 2, 1, text="ANSWER 7", answer="7", score=0.5, correct=True),
        _node(
            "j1", root.id, 3, 1, text="snake_case ANSWER 8", answer="8", score=0.0, correct=False
        ),
        _node(
            "j1",
            root.id,
            4,
            1,
            text="ANSWER 8",
            answer="8",
            score=0.2,
            correct=False,
            status="pruned",
        ),
        _node("j1", root.id, 5, 1, text="no answer", status="generated"),
    ]
    for s in samples[:5]:
        s.is_terminal = True
    kids = [_node("j1", samples[0].id, i, 2, text=f"kid {i}") for i in range(2)]
    with db.transaction() as session:
        session.add(job)
        session.flush()
        session.add_all([root, *samples, *kids])
    return {"job_id": "j1", "root": root.id, "samples": [s.id for s in samples], "kids": kids}


def _ids(db: Database, **kwargs: Any) -> list[str]:
    with db.session() as session:
        job = session.get(Job, "j1")
        assert job is not None
        page = list_nodes(session, job, cursor=None, limit=100, **kwargs)
        return [n.id for n in page.data]


def test_children_counts_come_with_every_page(db: Database, tree: dict[str, Any]) -> None:
    with db.session() as session:
        job = session.get(Job, "j1")
        assert job is not None
        page = list_nodes(session, job, parent_id=tree["root"], cursor=None, limit=100)
    assert [n.children for n in page.data] == [2, 0, 0, 0, 0, 0]


def test_node_filters(db: Database, tree: dict[str, Any]) -> None:
    samples = tree["samples"]
    none: dict[str, Any] = {"parent_id": None}
    assert _ids(db, **none, filters=NodeFilter(status="pending")) == [samples[5]]
    assert _ids(db, **none, filters=NodeFilter(status="pruned")) == [samples[4]]
    assert set(_ids(db, **none, filters=NodeFilter(is_terminal=True))) == set(samples[:5])
    scored = _ids(db, **none, filters=NodeFilter(min_score=0.5, max_score=0.95))
    assert set(scored) == {samples[1], samples[2]}
    # % and _ are literal text, not LIKE wildcards.
    assert _ids(db, **none, filters=NodeFilter(text="100%")) == [samples[0]]
    assert _ids(db, **none, filters=NodeFilter(text="snake_case")) == [samples[3]]
    assert _ids(db, **none, filters=NodeFilter(text="e_c")) == [samples[3]]
    assert _ids(db, **none, filters=NodeFilter(text="sample_")) == []
    with pytest.raises(InputError) as bad:
        _ids(db, **none, filters=NodeFilter(min_score=1, max_score=0))
    assert bad.value.field == "min_score"


def test_subtree_is_listed_breadth_first(db: Database, tree: dict[str, Any]) -> None:
    below = _ids(db, parent_id=None, under=tree["samples"][0])
    assert below == [tree["samples"][0], *sorted(k.id for k in tree["kids"])]
    assert len(_ids(db, parent_id=None, under=tree["root"])) == 9


def test_answer_distribution_counts_terminals(db: Database, tree: dict[str, Any]) -> None:
    with db.session() as session:
        job = session.get(Job, "j1")
        assert job is not None
        view = answer_distribution(session, job)
    assert view.terminals == 5 and view.correct_terminals == 2
    assert view.votes == {"7": 3.0, "8": 2.0}
    assert [(a.answer, a.nodes, a.correct) for a in view.answers] == [
        ("7", 3, True),
        ("8", 2, False),
    ]
    assert len(view.histogram) == HISTOGRAM_BINS
    assert sum(b.nodes for b in view.histogram) == 5
    assert view.histogram[-1].nodes == 1 and view.histogram[0].nodes == 1  # 1.0 and 0.0
    assert sum(b.correct for b in view.histogram) == 2


def test_jobs_list_filters_by_strategy_and_pages(db: Database) -> None:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with db.transaction() as session:
        for i in range(5):
            strategy = "beam_search" if i % 2 else "best_of_n"
            session.add(_job(f"job{i}", strategy, start + dt.timedelta(seconds=i)))
    seen: list[str] = []
    cursor = None
    with db.session() as session:
        while True:
            page = list_jobs_page(
                session, tenant=None, status=None, strategy="best_of_n", cursor=cursor, limit=2
            )
            seen += [j.id for j in page.data]
            if not (cursor := page.next_cursor):
                break
        with pytest.raises(InputError):
            list_jobs_page(
                session, tenant=None, status=None, strategy=None, cursor="bm9wZQ", limit=2
            )
    assert seen == ["job4", "job2", "job0"]
