"""A read-only view of a job's search tree, as strategies see it.

Strategies plan over this view and never touch the database, so they can be tested on
hand-built trees in milliseconds and driven by any executor.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

_NODE_NAMESPACE = uuid.UUID("6f1c2a7e-3b8d-4c3e-9a51-0c2b7d9e4f10")


def node_id_for(job_id: str, parent_id: str | None, child_index: int) -> str:
    """Deterministic node id: an expansion that runs twice writes the same rows."""
    return str(uuid.uuid5(_NODE_NAMESPACE, f"{job_id}/{parent_id or ''}/{child_index}"))


class NodeRole(enum.StrEnum):
    """What a node is, and so how the request that generates it is built
    (``ttc_core.engine.expansion``). Stored as its string value (``nodes.role``)."""

    #: The question itself: the one node without a parent, never generated.
    root = "root"
    #: A whole answer to the question.
    sample = "sample"
    #: One reasoning step continuing the parent's path (generation stops at the step
    #: delimiter); step-level searches (beam, DVTS, ToT, MCTS) grow these.
    step = "step"
    #: A step generated only to score its parent (beam-search lookahead), never chosen.
    lookahead = "lookahead"
    #: A review of the parent answer (Refine), with the verifier's feedback if asked.
    critique = "critique"
    #: A new answer from the grandparent answer and the parent critique (Refine).
    revise = "revise"
    #: A thought before an answer (extended thinking): the ``sample`` below it is the
    #: answer, and strategies see that answer in the thought's place
    #: (``ttc_core.engine.thinking.planning_view``).
    think = "think"


@dataclass(frozen=True, slots=True)
class NodeView:
    id: str
    parent_id: str | None
    depth: int
    child_index: int
    role: str
    status: str
    is_terminal: bool = False
    answer: str | None = None
    score: float | None = None
    correct: bool | None = None
    completion_tokens: int = 0
    #: Step nodes: the key of the state the path reaches (``meta.state``, see
    #: :mod:`ttc_core.search.strategies.states`); None for other roles and older nodes.
    state: str | None = None

    @property
    def usable(self) -> bool:
        """Generated and not cut: a candidate for selection or further expansion."""
        return self.status == "done"


@dataclass
class TreeView:
    root_id: str
    nodes: dict[str, NodeView] = field(default_factory=dict)
    _children: dict[str | None, list[NodeView]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, nodes: Iterable[NodeView]) -> TreeView:
        by_id: dict[str, NodeView] = {}
        children: dict[str | None, list[NodeView]] = {}
        root_id: str | None = None
        for node in nodes:
            by_id[node.id] = node
            children.setdefault(node.parent_id, []).append(node)
            if node.parent_id is None:
                root_id = node.id
        if root_id is None:
            raise ValueError("tree has no root node")
        for siblings in children.values():
            siblings.sort(key=lambda n: n.child_index)
        return cls(root_id=root_id, nodes=by_id, _children=children)

    @property
    def root(self) -> NodeView:
        return self.nodes[self.root_id]

    def children(self, node_id: str) -> Sequence[NodeView]:
        return self._children.get(node_id, ())

    def next_child_index(self, node_id: str) -> int:
        kids = self.children(node_id)
        return kids[-1].child_index + 1 if kids else 0

    def parent(self, node: NodeView) -> NodeView | None:
        return self.nodes.get(node.parent_id) if node.parent_id else None

    def path(self, node_id: str) -> list[NodeView]:
        """Nodes from the root down to ``node_id`` (inclusive)."""
        out: list[NodeView] = []
        current: NodeView | None = self.nodes[node_id]
        while current is not None:
            out.append(current)
            current = self.parent(current)
        out.reverse()
        return out

    def at_depth(self, depth: int) -> list[NodeView]:
        return sorted(
            (n for n in self.nodes.values() if n.depth == depth),
            key=lambda n: (n.parent_id or "", n.child_index),
        )

    @property
    def max_depth(self) -> int:
        return max(n.depth for n in self.nodes.values())

    def terminals(self) -> list[NodeView]:
        """Finished candidates (generated, not cut), in a stable order."""
        return sorted(
            (n for n in self.nodes.values() if n.is_terminal and n.usable),
            key=lambda n: (n.depth, n.parent_id or "", n.child_index),
        )

    def subtree(self, node_id: str) -> list[NodeView]:
        out: list[NodeView] = []
        stack = [self.nodes[node_id]]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(self.children(node.id))
        return out
