"""What step-level strategies share: parameters, candidate sets, final-answer selection.

A step-level node is one reasoning step; its ``score`` is the aggregated step-scorer
value of its path (a process reward model or an LLM judge, set on the job as ``prm``).
A node is terminal when its step holds a final answer or it reached ``max_depth``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Self

from pydantic import Field, model_validator

from ttc_core.search.strategies.base import SamplingParams, Selection
from ttc_core.search.strategies.voting import tally
from ttc_core.search.tree import NodeRole, NodeView, TreeView


class StepSearchParams(SamplingParams):
    """Shared by every step-level strategy (``max_tokens`` is per step)."""

    max_tokens: int = Field(default=256, ge=1, le=131_072, description="tokens per step")
    max_depth: int = Field(default=8, ge=1, le=64, description="steps before a path ends")
    delimiter: str = Field(default="\n\n", min_length=1, max_length=16)
    select: Literal["best", "majority", "weighted_majority"] = Field(
        default="best",
        description="final answer: best terminal by score, or (weighted) vote over terminals",
    )

    def step_delimiter(self) -> str:
        return self.delimiter

    def depth_limit(self) -> int | None:
        return self.max_depth


class BeamParams(StepSearchParams):
    """N candidates per depth in groups of M (beam search, DVTS); M must divide N."""

    n: int = Field(default=16, ge=1, le=4096, description="candidates per depth (N)")
    beam_width: int = Field(default=4, ge=1, le=4096, description="expansions per beam (M)")

    @model_validator(mode="after")
    def _divides(self) -> Self:
        if self.n % self.beam_width:
            raise ValueError(f"n ({self.n}) must be a multiple of beam_width ({self.beam_width})")
        return self


def rank_key(node: NodeView) -> tuple[float, int, int]:
    """Higher score first; ties to the shallower, then earlier node (deterministic)."""
    return (
        -(node.score if node.score is not None else float("-inf")),
        node.depth,
        node.child_index,
    )


def top(nodes: Iterable[NodeView], count: int) -> list[NodeView]:
    return sorted(nodes, key=rank_key)[:count]


def open_leaves(nodes: Iterable[NodeView]) -> list[NodeView]:
    """Generated, non-terminal step nodes: states a search may continue."""
    return [n for n in nodes if n.usable and not n.is_terminal and n.role == NodeRole.step]


def _best_key(node: NodeView) -> tuple[float, int, int, str]:
    """:func:`rank_key`, ties to the first in :meth:`TreeView.terminals` order (the
    smaller parent id), so that the best can be kept as nodes arrive."""
    return (*rank_key(node), node.parent_id or "")


@dataclass
class BestTerminal:
    """The best finished candidate (by :func:`rank_key`, lookahead steps excluded) and how
    many there are, kept as nodes arrive: selection over ``best`` costs nothing per step
    however many terminals the tree holds."""

    best: NodeView | None
    count: int

    @classmethod
    def build(cls, tree: TreeView) -> BestTerminal:
        index = cls(None, 0)
        index.absorb(tree, list(tree.nodes.values()))
        return index

    def absorb(self, tree: TreeView, added: Sequence[NodeView]) -> None:
        for node in added:
            if not (node.is_terminal and node.usable) or node.role == NodeRole.lookahead:
                continue
            self.count += 1
            if self.best is None or _best_key(node) < _best_key(self.best):
                self.best = node


def step_terminals(tree: TreeView) -> int:
    """How many finished step paths the tree holds (kept as nodes arrive)."""
    return tree.index(_StepTerminals, _StepTerminals.build).count


@dataclass
class _StepTerminals:
    count: int

    @classmethod
    def build(cls, tree: TreeView) -> _StepTerminals:
        index = cls(0)
        index.absorb(tree, list(tree.nodes.values()))
        return index

    def absorb(self, tree: TreeView, added: Sequence[NodeView]) -> None:
        self.count += sum(
            1 for n in added if n.is_terminal and n.usable and n.role == NodeRole.step
        )


def select_terminal(
    tree: TreeView, how: str, candidates: Sequence[NodeView] | None = None
) -> Selection:
    """The final answer over terminal nodes, with the chosen path in ``details``."""
    if candidates is None and how == "best":
        index = tree.index(BestTerminal, BestTerminal.build)
        if index.best is None:
            return Selection.failure("the search reached no final answer")
        details: dict[str, object] = {
            "terminals": index.count,
            "path": [n.id for n in tree.path(index.best.id)],
        }
        return Selection.of(index.best, **details)
    terminals = list(candidates if candidates is not None else tree.terminals())
    terminals = [n for n in terminals if n.role != NodeRole.lookahead]
    if not terminals:
        return Selection.failure("the search reached no final answer")
    if how == "best":
        best = min(terminals, key=rank_key)
        details = {"terminals": len(terminals)}
    else:
        votes = tally(terminals, weighted=how == "weighted_majority")
        if votes.winner is None:
            return Selection.failure("no terminal had an extractable answer")
        best = min((n for n in terminals if n.answer == votes.winner), key=rank_key)
        details = {"terminals": len(terminals), "votes": votes.as_dict()}
    details["path"] = [n.id for n in tree.path(best.id)]
    return Selection.of(best, **details)
