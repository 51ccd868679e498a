"""Why a job's answer won: the strategy's selection rule in words, the chosen node's
numbers and the runner-up's beside them, and the duplicates among sibling answers.

An MCTS whose answer comes through root child #3 while #0 has the most visits looks
wrong unless the page says that ``select=best`` ranks finished paths by their aggregated
step score, not root children by visits. This module reads what the strategy used (its
parameters, ``result.details``, the scored nodes) with a few bounded queries; it never
re-runs the strategy.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ttc_core.search.strategies import get_strategy
from ttc_core.search.tree import node_id_for
from ttc_core.store.models import Job, Node, NodeStatus
from ttc_core.store.queries import path_text


class Candidate(BaseModel):
    """A node (or an answer) the rule compared, with the numbers it compared."""

    node_id: str | None = None
    child_index: int | None = None
    depth: int | None = None
    answer: str | None = None
    score: float | None = None
    correct: bool | None = None
    votes: float | None = Field(default=None, description="votes (or summed reward) of the answer")
    visits: int | None = Field(default=None, description="MCTS visits (N)")
    value: float | None = Field(default=None, description="MCTS mean value (Q)")


SELECTION_EXAMPLE: dict[str, Any] = {
    "rule": "best_terminal_score",
    "summary": "The finished path with the best aggregated step score (min of the step "
    "scorer's values along the path) wins: #1 at depth 6 (answer 42) scored 0.990; the "
    "runner-up, #0 at depth 7 (answer 42), scored 0.970. Ties go to the shallower, then the "
    "earlier node.",
    "chosen": {"node_id": "n-3-1", "child_index": 1, "depth": 6, "answer": "42", "score": 0.99},
    "runner_up": {"node_id": "n-0-0", "child_index": 0, "depth": 7, "answer": "42", "score": 0.97},
    "most_visited": {"node_id": "n-0", "child_index": 0, "depth": 1, "visits": 293, "value": 0.404},
    "chosen_root_child": {
        "node_id": "n-3",
        "child_index": 3,
        "depth": 1,
        "visits": 233,
        "value": 0.381,
    },
    "note": "select=best ranks finished paths by score, not root children by visits.",
    "duplicate_groups": 0,
    "duplicate_nodes": 0,
}


class SelectionExplained(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [SELECTION_EXAMPLE]})

    rule: str = Field(description="e.g. best_terminal_score, majority_vote, most_visits")
    summary: str = Field(description="the rule in words, naming the winner")
    chosen: Candidate | None
    runner_up: Candidate | None = Field(default=None, description="second by the same rule")
    most_visited: Candidate | None = Field(
        default=None, description="MCTS: the root child with the most visits"
    )
    chosen_root_child: Candidate | None = Field(
        default=None, description="MCTS: the root child the chosen path goes through"
    )
    note: str | None = Field(default=None, description="what a reader could misread, said")
    duplicate_groups: int = Field(description="groups of sibling answers with identical text")
    duplicate_nodes: int = Field(description="answers in those groups beyond the first of each")


def _candidate(node: Node | None) -> Candidate | None:
    if node is None:
        return None
    meta = node.meta or {}
    return Candidate(
        node_id=node.id,
        child_index=node.child_index,
        depth=node.depth,
        answer=node.answer,
        score=node.score,
        correct=node.correct,
        visits=meta.get("visits") if isinstance(meta.get("visits"), int) else None,
        value=meta.get("q") if isinstance(meta.get("q"), int | float) else None,
    )


def _label(c: Candidate | None) -> str:
    if c is None:
        return "-"
    where = f"#{c.child_index}" if c.depth is None else f"#{c.child_index} at depth {c.depth}"
    answer = f" (answer {c.answer})" if c.answer is not None else ""
    return where + answer


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _ranked(query: Select[Node]) -> Select[Node]:  # best first
    return query.order_by(Node.score.desc(), Node.depth, Node.child_index)


def _candidates(job: Job, strategy: str) -> Select[Node]:
    """The nodes the rule chose among: terminal steps, or the root's samples."""
    query = select(Node).where(
        Node.job_id == job.id, Node.status == NodeStatus.done, Node.score.is_not(None)
    )
    if get_strategy(strategy).needs_step_scorer:
        return query.where(Node.is_terminal.is_(True), Node.role != "lookahead")
    return query.where(Node.role.in_(("sample", "revise")))


def _duplicates(session: Session, job: Job) -> tuple[int, int]:
    """Sibling answers (terminal nodes) whose texts are identical: groups, extra copies."""
    groups = (
        select(func.count(Node.id).label("copies"))
        .where(Node.job_id == job.id, Node.is_terminal.is_(True), Node.parent_id.is_not(None))
        .group_by(Node.parent_id, Node.text)
        .having(func.count(Node.id) > 1)
        .subquery()
    )
    row = session.execute(select(func.count(), func.coalesce(func.sum(groups.c.copies), 0))).one()
    return int(row[0]), int(row[1]) - int(row[0])


def _votes(details: dict[str, Any]) -> list[tuple[str, float]]:
    table = details.get("votes") or details.get("weights") or {}
    if not isinstance(table, dict):
        return []
    pairs = [(str(k), float(v)) for k, v in table.items() if isinstance(v, int | float)]
    return pairs  # already in the tally's order (winner first)


def explain_selection(session: Session, job: Job) -> SelectionExplained:
    """How the strategy picked ``job.result`` (or would, for a job still running)."""
    strategy = get_strategy(job.strategy)
    params = strategy.parse_params(job.params)
    result = job.result or {}
    details: dict[str, Any] = result.get("details") or {}
    if job.strategy == "auto" and isinstance(details.get("auto"), dict):
        chosen_strategy = str(details["auto"].get("strategy") or job.strategy)
    else:
        chosen_strategy = job.strategy
    chosen_node = session.get(Node, result["node_id"]) if result.get("node_id") else None
    chosen = _candidate(chosen_node)
    groups, extra = _duplicates(session, job)
    how = getattr(params, "select", "best")
    aggregation = (job.prm or {}).get("aggregation", "min")
    runner_up: Candidate | None = None
    note: str | None = None
    most_visited = chosen_root = None

    votes = _votes(details)
    if votes and (how != "best" or chosen_strategy == "self_consistency" or "weights" in details):
        weighted = "weights" in details or how == "weighted_majority"
        rule = "weighted_vote" if weighted else "majority_vote"
        measure = "summed reward" if weighted else "votes"
        top = votes[0]
        if chosen is not None:
            chosen.votes = top[1]
        if len(votes) > 1:
            runner_up = Candidate(answer=votes[1][0], votes=votes[1][1])
        summary = (
            f"The answer with the most {measure} over the extracted answers wins: "
            f"{top[0]} with {top[1]:g}"
            + (f", ahead of {votes[1][0]} with {votes[1][1]:g}" if len(votes) > 1 else "")
            + "; ties go to the earliest sample. The node shown is that answer's best sample."
        )
    elif chosen_strategy == "think":
        rule = "thinking_answer"
        summary = "The answer given after the thought (the first answered sample) is the result."
    elif chosen_strategy == "refine":
        rule = "refine_pass_then_score"
        score = _fmt(chosen.score if chosen else None)
        summary = (
            "A revision that passes the verifier wins; otherwise the best-scored attempt, "
            f"then the latest. Chosen: {_label(chosen)}, score {score}"
            + (f", passed: {details.get('passed')}" if "passed" in details else "")
            + "."
        )
    else:
        in_steps = get_strategy(chosen_strategy).needs_step_scorer
        rule = "best_terminal_score" if in_steps else "best_verifier_score"
        ranked: list[Node] = list(
            session.scalars(_ranked(_candidates(job, chosen_strategy)).limit(3))
        )
        runner_up = _candidate(next((n for n in ranked if n.id != result.get("node_id")), None))
        what = (
            f"the finished path with the best aggregated step score ({aggregation} of the "
            "step scorer's values along the path)"
            if in_steps
            else "the sample with the highest verifier score"
        )
        summary = (
            f"{what[0].upper()}{what[1:]} wins: {_label(chosen)} scored "
            f"{_fmt(chosen.score if chosen else None)}"
            + (
                f"; the runner-up, {_label(runner_up)}, scored {_fmt(runner_up.score)}"
                if runner_up
                else ""
            )
            + ". Ties go to the shallower, then the earlier node."
        )
        if chosen_strategy == "mcts" and chosen_node is not None:
            root_id = node_id_for(job.id, None, 0)
            kids = list(
                session.scalars(
                    select(Node).where(Node.job_id == job.id, Node.parent_id == root_id)
                )
            )
            by_visits = [k for k in kids if isinstance((k.meta or {}).get("visits"), int)]
            if by_visits:
                top_child = max(by_visits, key=lambda k: (k.meta["visits"], -k.child_index))
                path = path_text(session, chosen_node.id)
                through = path[1] if len(path) > 1 else None
                most_visited, chosen_root = _candidate(top_child), _candidate(through)
                if through is not None and through.id != top_child.id:
                    mv, cr = most_visited, chosen_root
                    assert mv is not None and cr is not None
                    note = (
                        f"select={how} ranks finished paths by score, not root children by "
                        f"visits: the answer comes through root child #{cr.child_index} "
                        f"({cr.visits} visits, value {_fmt(cr.value)}), while #{mv.child_index} "
                        f"has the most visits ({mv.visits}, value {_fmt(mv.value)}) but no "
                        "finished path below it scores as high."
                    )
    if groups:
        dup = f" {extra} answers repeat a sibling's text exactly ({groups} groups)."
        note = (note + dup) if note else dup.strip()
    if chosen is None:
        summary = "No answer has been chosen yet."
    return SelectionExplained(
        rule=rule,
        summary=summary,
        chosen=chosen,
        runner_up=runner_up,
        most_visited=most_visited,
        chosen_root_child=chosen_root,
        note=note,
        duplicate_groups=groups,
        duplicate_nodes=extra,
    )
