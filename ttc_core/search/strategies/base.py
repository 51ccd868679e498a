"""The strategy extension point.

A strategy is planning code over a read-only :class:`~ttc_core.search.tree.TreeView`. Given the
tree so far, its validated parameters and its persisted state, it returns a :class:`Plan`:
expand these nodes with k samples each, or finish with this selection. It does no I/O, so
it is tested on hand-built trees, driven by any executor and resumed from the persisted
tree after a crash.

Example: a strategy that samples once and takes what it gets::

    class OneShot(Strategy[SamplingParams]):
        name = "one_shot"
        params_model = SamplingParams

        def plan(self, tree, params, state):
            if not tree.children(tree.root_id):
                return Plan(expansions=[Expand(tree.root_id, 1)])
            return Plan(finish=self.select(tree, params))

        def select(self, tree, params):
            kids = [n for n in tree.children(tree.root_id) if n.usable]
            return Selection.of(kids[0]) if kids else Selection.failure("no sample")
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ttc_core.search.tree import NodeRole, NodeView, TreeView


class SamplingParams(BaseModel):
    """Sampling knobs shared by every strategy (passed to the inference server)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=512, ge=1, le=131_072)
    stop: list[str] | None = Field(default=None, max_length=8)

    # Typed access to knobs only some strategies have, so that the engine asks the
    # parameters instead of probing them with getattr.

    def step_delimiter(self) -> str:
        """Where a reasoning step ends (step-level searches make it a parameter)."""
        return "\n\n"

    def depth_limit(self) -> int | None:
        """The depth at which a step path ends, if the strategy has one."""
        return None

    def shows_feedback(self) -> bool:
        """Whether a critique sees the verifier's feedback (Refine makes it a parameter)."""
        return True


P = TypeVar("P", bound=SamplingParams)


#: The roles an expansion may generate (every :class:`~ttc_core.search.tree.NodeRole` but the
#: root), as their string values.
ROLES = tuple(role.value for role in NodeRole if role is not NodeRole.root)


@dataclass(frozen=True, slots=True)
class Expand:
    """Generate ``k`` more children of ``parent_id``."""

    parent_id: str
    k: int
    role: NodeRole = NodeRole.sample
    #: Overrides the job's sampling temperature (e.g. greedy lookahead).
    temperature: float | None = None
    #: The first child's index (None: after the parent's last child). A replay sets it
    #: to regenerate the children at the old tree's positions (``ttc_core.engine.replay_plan``).
    first_index: int | None = None


@dataclass(frozen=True)
class Selection:
    """The strategy's answer: a chosen node (or none, with the reason)."""

    node_id: str | None
    answer: str | None
    score: float | None
    correct: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of(cls, node: NodeView, **details: Any) -> Selection:
        return cls(node.id, node.answer, node.score, node.correct, dict(details))

    @classmethod
    def failure(cls, reason: str) -> Selection:
        return cls(None, None, None, error=reason)


@dataclass(frozen=True)
class Plan:
    expansions: list[Expand] = field(default_factory=list)
    finish: Selection | None = None
    state: dict[str, Any] | None = None  # None: leave the persisted state unchanged
    #: Values to merge into nodes' ``meta`` (e.g. MCTS visit counts), keyed by node id.
    node_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Job events to record with this step, as ``(kind, data)`` (e.g. ``adaptive_stop``):
    #: why a strategy decided what it did, kept with the job.
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


class Strategy(ABC, Generic[P]):
    name: ClassVar[str]
    #: One line for people (``ttc strategies``, ``ttc run --help``).
    summary: ClassVar[str] = ""
    params_model: ClassVar[type[SamplingParams]]
    #: Whether selection needs a score per node (a reference check or a reward model).
    needs_scores: ClassVar[bool] = False
    #: Whether the job must name a step scorer (``prm``): step-level search ranks by it.
    needs_step_scorer: ClassVar[bool] = False
    #: Whether the job thinks even without a ``thinking`` option (the defaults apply).
    thinks: ClassVar[bool] = False

    def parse_params(self, raw: Mapping[str, Any]) -> P:
        return self.params_model.model_validate(dict(raw))  # type: ignore[return-value]

    def planned_samples(self, params: P) -> int:
        """Upper bound of samples the job may generate (used for limits and budgets)."""
        return 1

    @abstractmethod
    def plan(self, tree: TreeView, params: P, state: Mapping[str, Any]) -> Plan:
        """Next actions for the tree as it stands."""

    @abstractmethod
    def select(self, tree: TreeView, params: P) -> Selection:
        """Best answer in the tree so far (also used when a budget ends the job)."""
