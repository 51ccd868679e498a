"""A finished 10,000-node MCTS job written straight into the database, shaped like the
one in issue 18: root child #0 has the most visits (293, value 0.404) but the answer
comes through #3 (233 visits, value 0.381), because ``select=best`` takes the terminal
with the best aggregated PRM score. Some terminal siblings repeat each other's text.

Shape: a complete 4-ary tree to depth 6 (5,460 nodes), and 4 children more under each of
the first 1,135 depth-6 nodes (4,540): 10,000 nodes below the root. Leaves are terminal.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import insert, text

from ttc_core.search.tree import node_id_for
from ttc_core.store.db import Database
from ttc_core.store.models import Job, Node

K = 4
DEPTH = 6
EXTRA_PARENTS = 1135
TOTAL = sum(K**d for d in range(1, DEPTH + 1)) + EXTRA_PARENTS * K
#: Root child #0: most visited; #3: holds the best terminal.
ROOT_STATS = {0: (293, 0.404), 1: (120, 0.31), 2: (98, 0.29), 3: (233, 0.381)}


def insert_big_mcts(database_url: str) -> tuple[str, list[str]]:
    """Returns the job id and the chosen path (root first)."""
    now = dt.datetime.now(dt.UTC)
    job_id = f"mcts-{now.timestamp():.6f}"
    root = node_id_for(job_id, None, 0)
    rows: list[dict[str, Any]] = [
        _row(job_id, root, None, 0, 0, "What is 6 * 7?", now, meta={"visits": 744, "q": 0.37})
    ]
    level = [(root, ())]
    for depth in range(1, DEPTH + 2):
        parents = level if depth <= DEPTH else level[:EXTRA_PARENTS]
        level = []
        for parent_id, trail in parents:
            for i in range(K):
                pos = (*trail, i)
                node_id = f"{job_id}-" + ".".join(map(str, pos))
                last = depth == DEPTH + 1
                rows.append(_node(job_id, node_id, parent_id, depth, i, pos, now, last))
                level.append((node_id, pos))
    # Leaves at depth 6 (no depth-7 children) are terminal too.
    with_kids = {r["parent_id"] for r in rows}
    for r in rows:
        if r["id"] not in with_kids and r["depth"] >= 1:
            r["is_terminal"] = True
            r["answer"] = r["answer"] or "41"
    best_pos = (3, 1, 2, 0, 3, 1)
    best_id = f"{job_id}-" + ".".join(map(str, best_pos))
    path = [root] + [f"{job_id}-" + ".".join(map(str, best_pos[:d])) for d in range(1, 7)]
    for r in rows:
        if r["id"] == best_id:
            r.update(
                score=0.99,
                step_score=0.99,
                answer="42",
                correct=True,
                text="So 6 * 7 = 42. ANSWER: 42",
            )
        elif r["id"] == f"{job_id}-0.0.0.0.0.0.0":
            r.update(score=0.97, step_score=0.97, answer="42", correct=True)
    db = Database(database_url)
    with db.transaction() as session:
        session.add(
            Job(
                id=job_id,
                tenant="ops",
                strategy="mcts",
                endpoint="sim",
                prompt="What is 6 * 7?",
                params={"simulations": 2500, "k": K, "max_depth": 8},
                verifier={"kind": "math"},
                prm={
                    "kind": "prm",
                    "endpoint": "sim-prm",
                    "protocol": "json",
                    "aggregation": "min",
                },
                budget={},
                seed=1,
                status="succeeded",
                step=700,
                node_count=TOTAL,
                prompt_tokens=400_000,
                completion_tokens=120_000,
                requests=2500,
                result={
                    "answer": "42",
                    "text": "... So 6 * 7 = 42. ANSWER: 42",
                    "score": 0.99,
                    "correct": True,
                    "node_id": best_id,
                    "ended_by": "strategy",
                    "details": {"terminals": 5000, "path": path},
                },
                created_at=now,
                started_at=now,
                finished_at=now,
            )
        )
        session.flush()
        for start in range(0, len(rows), 2000):
            session.execute(insert(Node), rows[start : start + 2000])
    if database_url.startswith("postgresql"):
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE nodes"))
    return job_id, path


def _row(
    job_id: str,
    node_id: str,
    parent_id: str | None,
    depth: int,
    index: int,
    body: str,
    now: dt.datetime,
    **extra: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": node_id,
        "job_id": job_id,
        "parent_id": parent_id,
        "depth": depth,
        "child_index": index,
        "role": "root" if parent_id is None else "step",
        "text": body,
        "status": "done",
        "is_terminal": False,
        "answer": None,
        "score": None,
        "step_score": None,
        "correct": None,
        "prompt_tokens": 20,
        "completion_tokens": 0 if parent_id is None else 12,
        "finish_reason": None if parent_id is None else "stop",
        "latency_ms": None,
        "seed": None,
        "meta": {},
        "created_at": now,
    }
    row.update(extra)
    return row


def _node(
    job_id: str,
    node_id: str,
    parent_id: str,
    depth: int,
    index: int,
    pos: tuple[int, ...],
    now: dt.datetime,
    terminal: bool,
) -> dict[str, Any]:
    h = sum((i + 1) * 7919 ** (n + 1) for n, i in enumerate(pos)) % 1000
    score = round(0.2 + 0.6 * h / 1000, 3)
    if depth == 1:
        visits, q = ROOT_STATS[index]
    else:
        visits, q = max(1, 200 >> (2 * depth - 2)), round(score * 0.9, 3)
    # Terminal siblings under every fifth parent repeat one text: duplicates to mark.
    same = terminal and (sum(pos[:-1]) % 5 == 0)
    body = (
        "Multiply: 6 * 7 = 41. ANSWER: 41" if same else f"Step {'.'.join(map(str, pos))}: try {h}."
    )
    return _row(
        job_id,
        node_id,
        parent_id,
        depth,
        index,
        body,
        now,
        is_terminal=terminal,
        answer="41" if terminal else None,
        score=score,
        step_score=score,
        correct=False if terminal else None,
        meta={"visits": visits, "q": q},
    )
