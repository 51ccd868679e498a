"""Level-by-level search shared by beam search and tree-of-thoughts BFS: expand the
root, then at each depth keep the best states and expand each of them k times."""

from __future__ import annotations

from ttc_core.search.strategies.base import Expand, Plan
from ttc_core.search.strategies.stepwise import StepSearchParams, open_leaves, select_terminal
from ttc_core.search.tree import NodeRole, NodeView, TreeView


def frontier(tree: TreeView) -> list[NodeView]:
    """Step nodes at the deepest depth reached so far (lookahead nodes excluded)."""
    steps = [n for n in tree.nodes.values() if n.role == NodeRole.step]
    if not steps:
        return []
    deepest = max(n.depth for n in steps)
    return [n for n in steps if n.depth == deepest]


def lookahead_tip(tree: TreeView, node: NodeView) -> NodeView:
    """The end of a node's greedy lookahead chain (the node itself if it has none)."""
    tip = node
    while True:
        chain = [c for c in tree.children(tip.id) if c.role == NodeRole.lookahead]
        if not chain:
            return tip
        tip = chain[0]


def plan_levels(
    tree: TreeView,
    params: StepSearchParams,
    *,
    root_k: int,
    keep: int,
    k: int,
    lookahead: int = 0,
) -> Plan:
    if not tree.children(tree.root_id):
        return Plan(expansions=[Expand(tree.root_id, root_k, role=NodeRole.step)])
    candidates = open_leaves(frontier(tree))
    ranked_by: dict[str, NodeView] = {n.id: n for n in candidates}
    if lookahead > 0:
        pending: list[Expand] = []
        for node in candidates:
            tip = lookahead_tip(tree, node)
            steps_ahead = tip.depth - node.depth
            if steps_ahead < lookahead and not tip.is_terminal and tip.usable:
                pending.append(Expand(tip.id, 1, role=NodeRole.lookahead, temperature=0.0))
            ranked_by[node.id] = tip
        if pending:
            return Plan(expansions=pending)
    if not candidates:
        return Plan(finish=select_terminal(tree, params.select))
    kept_ids = {n.id for n in _stable_top(candidates, ranked_by, keep)}
    kept = [n for n in candidates if n.id in kept_ids]
    dropped = {n.id: {"dropped": True} for n in candidates if n.id not in kept_ids}
    return Plan(expansions=[Expand(n.id, k, role=NodeRole.step) for n in kept], node_meta=dropped)


def _stable_top(
    nodes: list[NodeView], ranked_by: dict[str, NodeView], count: int
) -> list[NodeView]:
    def key(n: NodeView) -> tuple[float, int, str, int]:
        tip = ranked_by[n.id]
        score = tip.score if tip.score is not None else float("-inf")
        return (-score, n.depth, n.parent_id or "", n.child_index)

    return sorted(nodes, key=key)[:count]
