"""CSV and JSONL renderings of an eval's points, per-problem results and nodes.

CSV flattens intervals into ``*_low`` / ``*_high`` columns and keeps one header for all
rows (a column a row lacks is empty); JSONL writes each row as it is, one per line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ttc_core.evals.planning import EvalPlan
from ttc_core.store.models import Node, ProblemBatch

#: What ``GET /v1/evals/{id}/results?part=`` exports.
PARTS = ("points", "problems", "nodes")


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("ci95"):
            low, high = value if isinstance(value, list) else (None, None)
            stem = key.removesuffix("ci95").rstrip("_")
            out[f"{stem}_ci_low" if stem else "ci_low"] = low
            out[f"{stem}_ci_high" if stem else "ci_high"] = high
        elif isinstance(value, dict | list):
            out[key] = json.dumps(value)
        else:
            out[key] = value
    return out


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    flat = [_flat(r) for r in rows]
    columns = list(dict.fromkeys(key for row in flat for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()


def to_jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def node_rows(session: Session, batch: ProblemBatch, plan: EvalPlan) -> list[dict[str, Any]]:
    """Every node of the eval's jobs (no text), with the job's arm, grid value, problem
    and seed: the raw material to recompute any curve."""
    started = int(batch.state.get("next", 0))
    planned = {plan.job_id(i): plan.at(i) for i in range(started)}
    rows = []
    query = select(
        Node.job_id,
        Node.id,
        Node.parent_id,
        Node.depth,
        Node.child_index,
        Node.role,
        Node.status,
        Node.answer,
        Node.score,
        Node.correct,
        Node.prompt_tokens,
        Node.completion_tokens,
    ).order_by(Node.job_id, Node.depth, Node.child_index, Node.id)
    ids = list(planned)
    for start in range(0, len(ids), 500):
        chunk = query.where(Node.job_id.in_(ids[start : start + 500]))
        for node in session.execute(chunk):
            job = planned[node.job_id]
            rows.append(
                {
                    "job_id": node.job_id,
                    "arm": plan.arm_names(job),
                    "value": plan.value(job),
                    "problem": job.problem,
                    "seed_index": job.seed_index,
                    "node_id": node.id,
                    "parent_id": node.parent_id,
                    "depth": node.depth,
                    "child_index": node.child_index,
                    "role": node.role,
                    "status": node.status,
                    "answer": node.answer,
                    "score": node.score,
                    "correct": node.correct,
                    "prompt_tokens": node.prompt_tokens,
                    "completion_tokens": node.completion_tokens,
                }
            )
    return rows
