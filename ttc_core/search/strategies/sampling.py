"""Shared planning for flat sampling strategies: N children of the root, then select."""

from __future__ import annotations

from collections.abc import Sequence

from ttc_core.search.strategies.base import Expand, Plan
from ttc_core.search.tree import NodeView, TreeView


def plan_root_samples(tree: TreeView, n: int) -> Plan | None:
    """Expand the root up to ``n`` children; ``None`` once all ``n`` exist."""
    have = len(tree.children(tree.root_id))
    if have < n:
        return Plan(expansions=[Expand(tree.root_id, n - have)])
    return None


def usable_samples(tree: TreeView) -> Sequence[NodeView]:
    return [n for n in tree.children(tree.root_id) if n.usable]
