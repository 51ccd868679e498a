"""Vote counting over extracted, normalized answers (self-consistency and weighted BoN).

Ties are broken deterministically: larger vote (count, or summed score when weighted),
then the answer whose first sample came earliest, then the answer string. A plain
majority never looks at scores, not even to break a tie: with a reference the score *is*
the right answer, and an oracle tie-break would inflate self-consistency's accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ttc_core.search.tree import NodeView


@dataclass
class AnswerVotes:
    answer: str
    count: int = 0
    weight: float = 0.0
    first_index: int = 1 << 62


@dataclass
class Tally:
    entries: list[AnswerVotes] = field(default_factory=list)
    weighted: bool = False

    @property
    def winner(self) -> str | None:
        return self.entries[0].answer if self.entries else None

    def as_dict(self) -> dict[str, float]:
        return {e.answer: (e.weight if self.weighted else e.count) for e in self.entries}


def tally(nodes: Iterable[NodeView], *, weighted: bool = False) -> Tally:
    """Count votes per answer; nodes without an extracted answer do not vote."""
    by_answer: dict[str, AnswerVotes] = {}
    for node in nodes:
        if node.answer is None:
            continue
        votes = by_answer.setdefault(node.answer, AnswerVotes(node.answer))
        score = node.score or 0.0
        votes.count += 1
        votes.weight += score
        votes.first_index = min(votes.first_index, node.child_index)

    def rank(v: AnswerVotes) -> tuple[float, int, str]:
        primary = v.weight if weighted else float(v.count)
        return (-primary, v.first_index, v.answer)

    return Tally(sorted(by_answer.values(), key=rank), weighted=weighted)
