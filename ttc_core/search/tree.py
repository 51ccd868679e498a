"""A read-only view of a job's search tree, as strategies see it.

Strategies plan over this view and never touch the database, so they can be tested on
hand-built trees in milliseconds and driven by any executor.

A view also grows: the engine keeps a job's view between driver steps
(``ttc_core.engine.tree_cache``) and hands it the nodes that landed since with
:meth:`TreeView.absorb`, so that a step costs what changed, not the whole tree. What a
strategy derives from the tree (MCTS visit counts, the best terminal so far) lives in
*indexes* (:meth:`TreeView.index`): built from the tree the first time a strategy asks for
one, then kept up to date by ``absorb``. Indexes are derived data only; a view built from
scratch (a hand-built tree, a restarted worker) answers the same.
"""

from __future__ import annotations

import bisect
import enum
import uuid
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

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


class TreeIndex(Protocol):
    """Statistics derived from a tree, kept up to date as nodes arrive.

    ``absorb`` is called after ``added`` (nodes new to the view, in any order) joined
    ``tree``; afterwards the index must equal one built from scratch over the grown tree.
    Planning code reads an index and never changes what it says about the tree (a
    selection that needs scratch state keeps its own overlay); it may fill in a memo of a
    function of the tree alone (ToT-DFS remembers the subtrees it backtracked out of),
    which ``absorb`` clears where nodes land.
    """

    def absorb(self, tree: TreeView, added: Sequence[NodeView]) -> None: ...


IndexT = TypeVar("IndexT", bound=TreeIndex)


def _sibling_order(node: NodeView) -> int:
    return node.child_index


@dataclass
class TreeView:
    root_id: str
    nodes: dict[str, NodeView] = field(default_factory=dict)
    _children: dict[str | None, list[NodeView]] = field(default_factory=dict, repr=False)
    _indexes: dict[Hashable, TreeIndex] = field(default_factory=dict, repr=False)

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

    def index(self, key: Hashable, build: Callable[[TreeView], IndexT]) -> IndexT:
        """The index under ``key``, built by ``build(self)`` the first time it is asked
        for and kept up to date by :meth:`absorb` from then on. ``key`` names what the
        index depends on besides the tree (e.g. ``("mcts", max_depth)``)."""
        found = self._indexes.get(key)
        if found is None:
            found = self._indexes[key] = build(self)
        return found  # type: ignore[return-value]

    def absorb(self, added: Sequence[NodeView]) -> None:
        """Grow the view by nodes it does not hold yet, whose parents it holds or that come
        in ``added`` too, and bring its indexes up to date (the engine's call, between
        driver steps; strategies never grow a view). A node already in the view raises
        :class:`ValueError` (a changed node means a rebuild, not an absorb), and nothing
        is added then."""
        known = set()
        for node in added:
            if node.id in self.nodes or node.id in known or node.parent_id is None:
                raise ValueError(f"node {node.id} is not new to the view")
            known.add(node.id)
        for node in added:
            if node.parent_id not in self.nodes and node.parent_id not in known:
                raise ValueError(f"node {node.id}: parent {node.parent_id} is not in the view")
        for node in added:
            self.nodes[node.id] = node
            siblings = self._children.setdefault(node.parent_id, [])
            if siblings and siblings[-1].child_index > node.child_index:
                bisect.insort(siblings, node, key=_sibling_order)
            else:
                siblings.append(node)
        for found in self._indexes.values():
            found.absorb(self, added)

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
            self.index(_ByDepth, _ByDepth.build).nodes.get(depth, ()),
            key=lambda n: (n.parent_id or "", n.child_index),
        )

    @property
    def max_depth(self) -> int:
        return max(self.index(_ByDepth, _ByDepth.build).nodes)

    def terminals(self) -> list[NodeView]:
        """Finished candidates (generated, not cut), in a stable order."""
        return sorted(
            self.index(_Terminals, _Terminals.build).nodes,
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


@dataclass
class _ByDepth:
    """The nodes of each depth."""

    nodes: dict[int, list[NodeView]]

    @classmethod
    def build(cls, tree: TreeView) -> _ByDepth:
        index = cls({})
        index.absorb(tree, list(tree.nodes.values()))
        return index

    def absorb(self, tree: TreeView, added: Sequence[NodeView]) -> None:
        for node in added:
            self.nodes.setdefault(node.depth, []).append(node)


@dataclass
class _Terminals:
    """Finished candidates (generated, not cut), in arrival order."""

    nodes: list[NodeView]

    @classmethod
    def build(cls, tree: TreeView) -> _Terminals:
        index = cls([])
        index.absorb(tree, list(tree.nodes.values()))
        return index

    def absorb(self, tree: TreeView, added: Sequence[NodeView]) -> None:
        self.nodes.extend(n for n in added if n.is_terminal and n.usable)
