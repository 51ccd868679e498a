"""What an executor runs next: a driver step for a job, or an expansion batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A task for the executor to run next: a driver step or an expansion batch."""

    #: ``batch``: the driver step of a problem batch (``ttc_core.problem_batches.rounds``).
    kind: Literal["advance", "expand", "batch"]
    id: str
