"""Which jobs an eval runs, numbered, and the job spec of each.

Per problem, for each arm: a sampling arm (``spec.is_subsampled``) runs one job at the
grid's largest ``n`` and every smaller point comes from its samples; any other arm runs
one job per grid point. Each of those runs ``seeds`` times. Jobs are numbered problem by
problem (so that "problems done" grows steadily), and a job's id and seed follow from
its number: the eval can start its jobs in waves, and a driver step that runs twice
finds the job it would create already there.

All arms and grid points of a problem share its seeds (common random numbers), so the
paired comparisons between arms compare the same draws wherever the strategies sample
the same way.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from ttc_core.evals.spec import BUDGET_KEY, ArmSpec, EvalSpec, Grid, is_subsampled
from ttc_core.models import ProblemBatch
from ttc_core.submission import Budget, JobSpec
from ttc_core.verifiers import MathSpec, parse_verifier_spec


@dataclass(frozen=True, slots=True)
class PlannedJob:
    index: int
    arm: int
    problem: int
    seed_index: int
    #: Index into the arm's grid values; ``None``: the one job of a subsampled arm.
    point: int | None


def plan_of(batch: ProblemBatch) -> EvalPlan:
    """The plan of a stored eval (its spec, rows and seed)."""
    spec = EvalSpec.model_validate(batch.spec["eval"])
    return EvalPlan(spec, len(batch.problems), eval_id=batch.id, seed=int(batch.spec["seed"]))


class EvalPlan:
    """The numbered jobs of an eval over ``problems`` dataset rows."""

    def __init__(self, spec: EvalSpec, problems: int, *, eval_id: str, seed: int) -> None:
        self.spec = spec
        self.problems = problems
        self.eval_id = eval_id
        self.seed = seed
        self.grids = [spec.grid_of(arm) for arm in spec.arms]
        self.units: list[list[int | None]] = [
            [None] if is_subsampled(arm, grid) else list(range(len(grid.values)))
            for arm, grid in zip(spec.arms, self.grids, strict=True)
        ]
        self._per_problem = [
            (a, point, s)
            for a, points in enumerate(self.units)
            for point in points
            for s in range(spec.seeds)
        ]

    @property
    def total(self) -> int:
        return len(self._per_problem) * self.problems

    @property
    def per_problem(self) -> int:
        return len(self._per_problem)

    def at(self, index: int) -> PlannedJob:
        problem, rest = divmod(index, len(self._per_problem))
        arm, point, seed_index = self._per_problem[rest]
        return PlannedJob(index, arm, problem, seed_index, point)

    def job_id(self, index: int) -> str:
        return str(uuid.uuid5(uuid.UUID(self.eval_id), f"job:{index}"))

    def job_seed(self, problem: int, seed_index: int) -> int:
        digest = hashlib.sha256(f"{self.seed}:{problem}:{seed_index}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    def value(self, job: PlannedJob) -> int:
        """The grid value the job runs at (a subsampled arm's job: the largest)."""
        values = self.grids[job.arm].values
        return values[-1] if job.point is None else values[job.point]

    def job_spec(self, job: PlannedJob, row: dict[str, Any]) -> JobSpec:
        arm = self.spec.arms[job.arm]
        return job_spec_for(
            arm,
            self.grids[job.arm],
            self.value(job),
            row,
            endpoint=self.spec.endpoint,
            seed=self.job_seed(job.problem, job.seed_index),
        )


def job_spec_for(
    arm: ArmSpec, grid: Grid, value: int, row: dict[str, Any], *, endpoint: str, seed: int
) -> JobSpec:
    """The ordinary job that runs ``arm`` at ``grid.key = value`` on one dataset row."""
    params = dict(arm.params)
    budget = arm.budget
    if grid.key.startswith("budget."):
        budget = Budget.model_validate(
            {**budget.model_dump(exclude_none=True), grid.key.removeprefix("budget."): value}
        )
    else:
        params[grid.key] = value
    if arm.verifier is not None:
        verifier = arm.verifier
    elif row.get("verifier") is not None:
        verifier = parse_verifier_spec(row["verifier"])
    else:
        verifier = MathSpec()
    return JobSpec(
        strategy=arm.strategy,
        endpoint=endpoint,
        prompt=row.get("prompt"),
        messages=row.get("messages"),
        params=params,
        verifier=verifier,
        prm=arm.prm,
        reference=row.get("reference"),
        budget=budget,
        seed=seed,
    )


__all__ = ["BUDGET_KEY", "EvalPlan", "PlannedJob", "job_spec_for", "plan_of"]
