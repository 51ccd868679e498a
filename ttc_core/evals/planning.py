"""Which jobs an eval runs, numbered, and the job spec of each.

Per problem: a sampling arm (``spec.is_subsampled``) runs one job at the grid's largest
``n`` and every smaller point comes from its samples, and sampling arms that draw the
same samples (:func:`sampling_key`: best-of-n and self-consistency with the same
sampling params and verifier) share that one run; any other arm runs one job per grid
point. Each of those runs ``seeds`` times. Jobs are numbered problem by
problem (so that "problems done" grows steadily), and a job's id and seed follow from
its number: the eval can start its jobs in waves, and a driver step that runs twice
finds the job it would create already there.

All arms and grid points of a problem share its seeds (common random numbers), so the
paired comparisons between arms compare the same draws wherever the strategies sample
the same way.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from ttc_core.evals.spec import BUDGET_KEY, ArmSpec, EvalSpec, Grid, is_subsampled
from ttc_core.service.submission import Budget, JobSpec
from ttc_core.store.expansion_cache import CacheMode
from ttc_core.store.models import ProblemBatch
from ttc_core.verifiers import MathSpec, parse_verifier_spec


@dataclass(frozen=True, slots=True)
class PlannedJob:
    index: int
    #: The arms this job serves: one, or every subsampled arm of a sampling group.
    arms: tuple[int, ...]
    problem: int
    seed_index: int
    #: Index into the arm's grid values; ``None``: the one run of a sampling group.
    point: int | None

    @property
    def arm(self) -> int:
        """The arm whose strategy the job runs (a group's first)."""
        return self.arms[0]


def sampling_key(arm: ArmSpec) -> str:
    """What a subsampled arm's samples depend on: arms with the same key draw the same
    samples (the same seeds), so one run serves them all; their strategies differ only
    in how they would pick an answer, which the estimators compute from the samples."""
    params = {k: v for k, v in arm.params.items() if k not in ("n", "weighted")}
    shape = {
        "params": params,
        "verifier": arm.verifier.model_dump(mode="json") if arm.verifier else None,
        "prm": arm.prm.model_dump(mode="json") if arm.prm else None,
        "budget": arm.budget.model_dump(mode="json", exclude_none=True),
    }
    return json.dumps(shape, sort_keys=True)


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
        # Per problem and seed: one run per sampling group, one job per point of others.
        groups: dict[str, list[int]] = {}
        units: list[tuple[tuple[int, ...] | list[int], int | None]] = []
        for a, (arm, grid) in enumerate(zip(spec.arms, self.grids, strict=True)):
            if not is_subsampled(arm, grid):
                units += [((a,), point) for point in range(len(grid.values))]
            elif sampling_key(arm) in groups:
                groups[sampling_key(arm)].append(a)
            else:
                groups[sampling_key(arm)] = [a]
                units.append((groups[sampling_key(arm)], None))
        self.units = [(tuple(arms), point) for arms, point in units]
        self._per_problem = [
            (arms, point, s) for arms, point in self.units for s in range(spec.seeds)
        ]

    @property
    def total(self) -> int:
        return len(self._per_problem) * self.problems

    @property
    def per_problem(self) -> int:
        return len(self._per_problem)

    def at(self, index: int) -> PlannedJob:
        problem, rest = divmod(index, len(self._per_problem))
        arms, point, seed_index = self._per_problem[rest]
        return PlannedJob(index, arms, problem, seed_index, point)

    def job_id(self, index: int) -> str:
        return str(uuid.uuid5(uuid.UUID(self.eval_id), f"job:{index}"))

    def job_seed(self, problem: int, seed_index: int) -> int:
        digest = hashlib.sha256(f"{self.seed}:{problem}:{seed_index}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF

    def value(self, job: PlannedJob) -> int:
        """The grid value the job runs at (a sampling group's run: the largest n of its
        arms)."""
        if job.point is None:
            return max(self.grids[a].values[-1] for a in job.arms)
        return self.grids[job.arm].values[job.point]

    def arm_names(self, job: PlannedJob) -> str:
        return ", ".join(self.spec.arms[a].name or "" for a in job.arms)

    def job_spec(self, job: PlannedJob, row: dict[str, Any]) -> JobSpec:
        arm = self.spec.arms[job.arm]
        return job_spec_for(
            arm,
            self.grids[job.arm],
            self.value(job),
            row,
            endpoint=self.spec.endpoint,
            seed=self.job_seed(job.problem, job.seed_index),
            cache=self.spec.cache,
        )


def job_spec_for(
    arm: ArmSpec,
    grid: Grid,
    value: int,
    row: dict[str, Any],
    *,
    endpoint: str,
    seed: int,
    cache: CacheMode | None = None,
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
        cache=cache,
    )


__all__ = ["BUDGET_KEY", "EvalPlan", "PlannedJob", "job_spec_for", "plan_of"]
