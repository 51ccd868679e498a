"""The answers a finished job returns as OpenAI choices: its result first, then, for
``n`` > 1, the next best distinct answers in the strategy's own order.

"The strategy's order" is found by asking the strategy itself: its ``select`` runs again
on the job's tree with the answers already chosen taken out (their nodes marked pruned in
a copy of the planning view), so a vote gives the runner-up answer, best-of-N the next
best score, beam search the next best finished beam. Answers are distinct by their
extracted answer; plain samples (strategy ``sample``) have no notion of the same answer,
so each sample is its own, as OpenAI's ``n`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from ttc_api.openai_compat.mapping import PLAIN
from ttc_core.engine.expansion import STEP_ROLES
from ttc_core.engine.thinking import planning_view
from ttc_core.search.strategies import get_strategy
from ttc_core.search.tree import TreeView
from ttc_core.store.models import Job, Node
from ttc_core.store.queries import load_tree, path_text


@dataclass(frozen=True)
class RankedAnswer:
    text: str
    finish_reason: str
    node_id: str | None
    answer: str | None
    score: float | None
    correct: bool | None


def ranked_answers(session: Session, job: Job, count: int) -> list[RankedAnswer]:
    """Up to ``count`` answers of a succeeded job, best first (its ``result`` is the first)."""
    result = job.result or {}
    first_id = result.get("node_id")
    first = _answer(session, job, first_id, result.get("text"))
    if first is None:
        return []
    answers = [replace(first, score=result.get("score"), correct=result.get("correct"))]
    if count <= 1:
        return answers
    strategy = get_strategy(job.strategy)
    params = strategy.parse_params(job.params)
    tree = planning_view(load_tree(session, job.id))
    taken_nodes = {first_id}
    taken_answers = {first.answer} if first.answer is not None and job.strategy != PLAIN else set()
    while len(answers) < count:
        view = _without(tree, taken_nodes, taken_answers)
        pick = strategy.select(view, params)
        if pick.node_id is None or pick.node_id in taken_nodes:
            break
        found = _answer(session, job, pick.node_id, None)
        if found is None:
            break
        answers.append(replace(found, score=pick.score, correct=pick.correct))
        taken_nodes.add(pick.node_id)
        if pick.answer is not None and job.strategy != PLAIN:
            taken_answers.add(pick.answer)
    return answers


def _without(tree: TreeView, node_ids: set[str | None], answers: set[str]) -> TreeView:
    """A copy of the view with these nodes, and every node of these answers, pruned."""
    return TreeView.build(
        replace(n, status="pruned")
        if n.id in node_ids or (n.answer is not None and n.answer in answers)
        else n
        for n in tree.nodes.values()
    )


def _answer(
    session: Session, job: Job, node_id: str | None, text: str | None
) -> RankedAnswer | None:
    """The full text of a chosen node (a step path joined as the job result joins it)."""
    if node_id is None:
        return None
    node = session.get(Node, node_id)
    if node is None:
        return None
    if text is None:
        if node.role in STEP_ROLES:
            params = get_strategy(job.strategy).parse_params(job.params)
            delimiter = str(getattr(params, "delimiter", "\n\n"))
            text = delimiter.join(
                n.text for n in path_text(session, node.id) if n.role in STEP_ROLES
            )
        else:
            text = node.text
    return RankedAnswer(
        text=text,
        finish_reason=node.finish_reason or "stop",
        node_id=node.id,
        answer=node.answer,
        score=node.score,
        correct=node.correct,
    )
