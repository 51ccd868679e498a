"""Iterative refinement (Self-Refine, Madaan et al. 2023): generate an answer, ask for a
critique, revise with the critique; stop when the verifier passes or after ``rounds``
revisions. With ``use_feedback`` the critique prompt carries the verifier's feedback (a
failed unit test, a wrong-answer check), which makes critiques concrete.

The tree is ``n`` independent chains: attempt → critique → revision → critique → ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from ttc_core.search.strategies.base import Expand, Plan, SamplingParams, Selection, Strategy
from ttc_core.search.tree import NodeRole, NodeView, TreeView

ATTEMPT_ROLES = (NodeRole.sample, NodeRole.revise)


class RefineParams(SamplingParams):
    rounds: int = Field(default=3, ge=1, le=20, description="revisions at most")
    n: int = Field(default=1, ge=1, le=256, description="independent chains")
    use_feedback: bool = Field(default=True, description="show the verifier's feedback")
    pass_score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="a score that counts as passing (for verifiers without a reference)",
    )

    def shows_feedback(self) -> bool:
        return self.use_feedback


def chain(tree: TreeView, head: NodeView) -> list[NodeView]:
    nodes = [head]
    while kids := tree.children(nodes[-1].id):
        nodes.append(kids[-1])
    return nodes


def passed(node: NodeView, params: RefineParams) -> bool:
    if node.correct is not None:
        return node.correct
    return params.pass_score is not None and (node.score or 0.0) >= params.pass_score


class Refine(Strategy[RefineParams]):
    name = "refine"
    summary = "Self-Refine: attempt, critique, revise until the verifier passes"
    params_model = RefineParams

    def planned_samples(self, params: RefineParams) -> int:
        return params.n * (1 + 2 * params.rounds)

    def plan(self, tree: TreeView, params: RefineParams, state: Mapping[str, Any]) -> Plan:
        heads = tree.children(tree.root_id)
        if not heads:
            return Plan(expansions=[Expand(tree.root_id, params.n, role=NodeRole.sample)])
        expansions = []
        for head in heads:
            nodes = chain(tree, head)
            last = nodes[-1]
            if not last.usable:
                continue
            if last.role == NodeRole.critique:
                expansions.append(Expand(last.id, 1, role=NodeRole.revise))
                continue
            revisions = sum(1 for n in nodes if n.role == NodeRole.revise)
            if not passed(last, params) and revisions < params.rounds:
                expansions.append(Expand(last.id, 1, role=NodeRole.critique))
        if expansions:
            return Plan(expansions=expansions)
        return Plan(finish=self.select(tree, params))

    def select(self, tree: TreeView, params: RefineParams) -> Selection:
        attempts = [n for n in tree.nodes.values() if n.role in ATTEMPT_ROLES and n.usable]
        if not attempts:
            return Selection.failure("no attempt was generated")
        # A passing attempt first, then the best score, then the latest revision.
        best = max(
            attempts,
            key=lambda n: (passed(n, params), n.score if n.score is not None else -1.0, n.depth),
        )
        return Selection.of(
            best,
            path=[n.id for n in tree.path(best.id)],
            passed=passed(best, params),
            revisions=sum(1 for n in tree.path(best.id) if n.role == NodeRole.revise),
        )
