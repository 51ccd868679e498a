"""A planning view grown step by step (``TreeView.absorb``, ``planning_additions``) equals
the view built from scratch over the same nodes: its nodes, children, depths and every
index strategies keep on it (MCTS statistics, the best terminal, the frontier), after
random sequences of steps."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from ttc_core.engine.steps import _Frontier
from ttc_core.engine.thinking import planning_additions, planning_view
from ttc_core.search.strategies import get_strategy
from ttc_core.search.strategies.mcts import stats_of, tree_stats
from ttc_core.search.strategies.stepwise import BestTerminal, select_terminal, step_terminals
from ttc_core.search.tree import NodeView, TreeView

ROOT = "root"


def _root() -> NodeView:
    return NodeView(ROOT, None, 0, 0, "root", "done")


def _child(rng: random.Random, parent: NodeView, index: int, role: str = "step") -> NodeView:
    status = rng.choices(["done", "failed", "pruned"], [0.85, 0.1, 0.05])[0]
    score = None if rng.random() < 0.1 else round(rng.random(), 2)  # ties happen
    terminal = rng.random() < 0.2 or parent.depth + 1 >= 6
    return NodeView(
        id=f"{parent.id}.{index}",
        parent_id=parent.id,
        depth=parent.depth + 1,
        child_index=index,
        role=role,
        status=status,
        is_terminal=terminal,
        answer=rng.choice(["1", "2", None]) if terminal else None,
        score=score,
        completion_tokens=rng.randint(1, 9),
    )


def _grow(rng: random.Random, nodes: dict[str, NodeView], think: bool) -> list[NodeView]:
    """One step: a few open nodes get children (sometimes thoughts with their answers, a
    thought left unanswered, a lookahead step, a second batch under one parent)."""
    kids: dict[str, int] = {}
    for node in nodes.values():
        if node.parent_id is not None:
            kids[node.parent_id] = max(kids.get(node.parent_id, -1), node.child_index)
    expandable = [
        n
        for n in nodes.values()
        if n.status == "done" and not n.is_terminal and n.role in ("root", "step", "sample")
    ]
    added: list[NodeView] = []
    for parent in rng.sample(expandable, min(len(expandable), rng.randint(1, 4))):
        first = kids.get(parent.id, -1) + 1
        for index in range(first, first + rng.randint(1, 4)):
            if think and rng.random() < 0.5:
                thought = replace(_child(rng, parent, index, "think"), is_terminal=False)
                added.append(thought)
                if rng.random() < 0.9:  # its answer lands with it, or it fails unanswered
                    answer = _child(rng, thought, 0, "sample")
                    added.append(replace(answer, is_terminal=True, answer="3"))
            else:
                role = "lookahead" if rng.random() < 0.05 else "step"
                added.append(_child(rng, parent, index, role))
    rng.shuffle(added)  # a batch's rows come in no particular order
    return added


def _touch(tree: TreeView, max_depth: int) -> None:
    """Ask for every index, so that the grown view keeps them all."""
    stats_of(tree, max_depth)
    tree.index(BestTerminal, BestTerminal.build)
    tree.index(_Frontier, _Frontier.build)
    step_terminals(tree)
    tree.at_depth(1)
    tree.terminals()


def _same(grown: TreeView, built: TreeView, max_depth: int) -> None:
    assert grown.root_id == built.root_id
    assert grown.nodes == built.nodes
    for node_id in built.nodes:
        assert list(grown.children(node_id)) == list(built.children(node_id))
    assert grown.max_depth == built.max_depth
    for depth in range(built.max_depth + 1):
        assert grown.at_depth(depth) == built.at_depth(depth)
    assert grown.terminals() == built.terminals()
    a, b = stats_of(grown, max_depth), tree_stats(built, max_depth)
    assert a.visits == b.visits
    assert a.value_sum == b.value_sum  # exact: W is summed in integer ticks
    assert a.open_below == b.open_below
    assert a.expanded == b.expanded
    assert step_terminals(grown) == step_terminals(built)
    assert grown.index(_Frontier, _Frontier.build) == _Frontier.build(built)
    for how in ("best", "majority", "weighted_majority"):
        assert select_terminal(grown, how) == select_terminal(built, how)
    # The "best" shortcut picks what a scan of the terminals picks.
    best = BestTerminal.build(built).best
    scan = select_terminal(built, "best", built.terminals())
    assert (best.id if best else None) == scan.node_id


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("think", [False, True])
def test_grown_view_equals_the_view_built_from_scratch(seed: int, think: bool) -> None:
    rng = random.Random(seed)
    max_depth = rng.randint(3, 7)
    raw = {ROOT: _root()}
    grown = planning_view(TreeView.build(raw.values()))
    rebuilt = 0
    for step in range(rng.randint(3, 25)):
        if step == 1 or rng.random() < 0.3:
            _touch(grown, max_depth)
        added = _grow(rng, raw, think)
        raw.update((n.id, n) for n in added)
        placed = planning_additions(grown, added)
        if placed is None:  # what the engine does then: build the view again
            grown = planning_view(TreeView.build(raw.values()))
            rebuilt += 1
        else:
            grown.absorb(placed)
        _same(grown, planning_view(TreeView.build(raw.values())), max_depth)
    if not think:
        assert rebuilt == 0


PLANNERS = [
    ("mcts", {"k": 3, "parallel": 4, "simulations": 60, "max_depth": 5}),
    ("mcts", {"k": 2, "parallel": 1, "simulations": 40, "max_depth": 7}),
    ("tot_dfs", {"k": 3, "threshold": 0.4, "max_expansions": 40, "max_depth": 5}),
    ("tot_bfs", {"k": 3, "breadth": 2, "max_depth": 5}),
    ("beam_search", {"n": 6, "beam_width": 2, "max_depth": 5}),
]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("name", "raw_params"), PLANNERS)
def test_strategies_plan_alike_on_grown_and_built_views(
    seed: int, name: str, raw_params: dict[str, Any]
) -> None:
    """Planning reads the indexes and leaves them saying what they said: the same plan and
    selection on a grown view (asked twice) as on a fresh one, step after step."""
    rng = random.Random(seed)
    strategy = get_strategy(name)
    params = strategy.parse_params(raw_params)
    raw: dict[str, Any] = {ROOT: _root()}
    grown = TreeView.build(raw.values())
    state: dict[str, Any] = {}
    for _ in range(40):
        plan = strategy.plan(grown, params, state)
        assert strategy.plan(grown, params, state) == plan
        assert strategy.plan(TreeView.build(raw.values()), params, state) == plan
        assert strategy.select(grown, params) == strategy.select(
            TreeView.build(raw.values()), params
        )
        if plan.finish is not None or not plan.expansions:
            break
        state = plan.state if plan.state is not None else state
        added = []
        for exp in plan.expansions:
            first = grown.next_child_index(exp.parent_id)
            for index in range(first, first + exp.k):
                added.append(_child(rng, grown.nodes[exp.parent_id], index, exp.role))
        raw.update((n.id, n) for n in added)
        grown.absorb(added)


def test_absorb_refuses_a_node_it_holds_and_changes_nothing() -> None:
    root = _root()
    a = NodeView("a", ROOT, 1, 0, "step", "done", score=0.5)
    tree = TreeView.build([root, a])
    stats = stats_of(tree, 4)
    with pytest.raises(ValueError, match="not new"):
        tree.absorb([NodeView("b", ROOT, 1, 1, "step", "done"), replace(a, status="pruned")])
    with pytest.raises(ValueError, match="parent"):
        tree.absorb([NodeView("c", "nowhere", 2, 0, "step", "done")])
    assert set(tree.nodes) == {ROOT, "a"} and stats.visits == {ROOT: 1, "a": 1}
