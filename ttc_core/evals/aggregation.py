"""From an eval's jobs and nodes to per-problem outcomes, points and comparisons.

A *cell* is one problem's outcome at one (arm, grid value) in one seed's run: the
estimator's value for a subsampled arm (``ttc_core.evals.estimators``; its usage is the
job's, prorated to k of the n samples, and flagged ``estimated``), the job's own
``result.correct`` otherwise (a failed job counts as wrong; a cancelled one as missing).
A problem's value at a point is the mean over its seeds, counted once all its seeds
have finished. A *point* is the mean over those problems, with a 95% bootstrap interval
over problems, the mean and total tokens (prompt, completion, thinking), requests, cost
and wall time. Paired comparisons take two arms at the same grid value (matched
compute) over the problems both finished.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ttc_core.engine.thinking import planning_view
from ttc_core.evals.estimators import Samples, best_of_k, majority_curve, pass_at_k
from ttc_core.evals.planning import EvalPlan, PlannedJob
from ttc_core.evals.statistics import bootstrap_ci, paired_difference
from ttc_core.search.strategies.sampling import usable_samples
from ttc_core.settings import Settings
from ttc_core.store.models import Job, JobStatus, ProblemBatch
from ttc_core.store.queries import load_trees

#: Usage columns of a cell, summed and averaged per point.
USAGE = ("prompt_tokens", "completion_tokens", "thinking_tokens", "requests", "cost", "wall_s")
#: Difficulty bins of a probe (1 - the problem's pass@1): upper edges and labels.
_PROBE_BINS = ((1 / 3, "easy"), (2 / 3, "medium"), (math.inf, "hard"))


@dataclass
class Cell:
    accuracy: float
    pass_at_k: float | None
    usage: dict[str, float]
    job_id: str
    estimated: bool


@dataclass
class JobCells:
    """What one finished job says: its cells by grid-value index, and (a subsampled
    run) the share of its samples that are right."""

    planned: PlannedJob
    #: ``(arm, grid value index, cell)``.
    cells: list[tuple[int, int, Cell]]
    pass1: float | None = None


@dataclass
class Outcomes:
    """Per (arm, grid value index): per problem, the mean of its seeds' cells."""

    plan: EvalPlan
    #: Finished jobs' cells by job id (a finished job's cells do not change: a later
    #: collection reads only the jobs that finished since).
    by_job: dict[str, JobCells] = field(default_factory=dict)

    @cached_property
    def cells(self) -> dict[tuple[int, int], dict[int, list[Cell]]]:
        out: dict[tuple[int, int], dict[int, list[Cell]]] = defaultdict(lambda: defaultdict(list))
        for job in self.by_job.values():
            for arm, point, cell in job.cells:
                out[(arm, point)][job.planned.problem].append(cell)
        return out

    @cached_property
    def pass1(self) -> dict[int, list[float]]:
        """Per problem: the mean per-sample accuracy of subsampled runs (a probe)."""
        out: dict[int, list[float]] = defaultdict(list)
        for job in sorted(self.by_job.values(), key=lambda j: j.planned.index):
            if job.pass1 is not None:
                out[job.planned.problem].append(job.pass1)
        return out

    def problem_values(self, arm: int, point: int) -> dict[int, dict[str, Any]]:
        """Problems whose seeds have all finished at this point, averaged over seeds."""
        out: dict[int, dict[str, Any]] = {}
        at_point = self.cells.get((arm, point), {})
        # In problem order, each problem's seeds in job order: the same numbers (to the
        # last bit, bootstrap included) whatever order the jobs finished in.
        for problem in sorted(at_point):
            cells = sorted(at_point[problem], key=lambda c: c.job_id)
            if len(cells) < self.plan.spec.seeds:
                continue
            count = len(cells)
            passes = [c.pass_at_k for c in cells if c.pass_at_k is not None]
            out[problem] = {
                "accuracy": sum(c.accuracy for c in cells) / count,
                "pass_at_k": sum(passes) / len(passes) if passes else None,
                **{k: sum(c.usage[k] for c in cells) / count for k in USAGE},
                "job_ids": [c.job_id for c in cells],
                "estimated": any(c.estimated for c in cells),
            }
        return out


def _usage(job: Job) -> dict[str, float]:
    wall = 0.0
    if job.started_at is not None and job.finished_at is not None:
        wall = max(0.0, (job.finished_at - job.started_at).total_seconds())
    return {
        "prompt_tokens": float(job.prompt_tokens),
        "completion_tokens": float(job.completion_tokens),
        "thinking_tokens": float(job.thinking_tokens),
        "requests": float(job.requests),
        "cost": float(job.cost),
        "wall_s": wall,
    }


def _prorated(job: Job, k: int, n: int, settings: Settings) -> dict[str, float]:
    """The usage of a job of k samples, estimated from this job's n: completion tokens and
    prompt tokens in proportion (a reward model's calls grow with the samples it scores),
    but at least one request with its prompt; the cost at the endpoint's prices; the wall
    time per request."""
    full = _usage(job)
    share = k / n
    requests = max(1.0, math.ceil(full["requests"] * share)) if full["requests"] else 0.0
    per_request = requests / full["requests"] if full["requests"] else 0.0
    one_request = full["prompt_tokens"] / full["requests"] if full["requests"] else 0.0
    prompt = max(full["prompt_tokens"] * share, one_request)
    completion = full["completion_tokens"] * share
    endpoint = settings.endpoints.get(job.endpoint)
    if endpoint is not None:
        cost = (
            prompt * endpoint.price_per_1k_prompt + completion * endpoint.price_per_1k_completion
        ) / 1000
    else:
        cost = full["cost"] * share
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "thinking_tokens": full["thinking_tokens"] * share,
        "requests": requests,
        "cost": cost,
        "wall_s": full["wall_s"] * per_request,
    }


def _mc_seed(plan: EvalPlan, job: PlannedJob, arm: int) -> int:
    digest = hashlib.sha256(f"mc:{plan.seed}:{job.problem}:{arm}:{job.seed_index}".encode())
    return int.from_bytes(digest.digest()[:8], "big")


def _samples(tree: Any) -> Samples:
    view = planning_view(tree)
    nodes = sorted(usable_samples(view), key=lambda n: n.child_index)
    return Samples(
        correct=[bool(n.correct) for n in nodes],
        answers=[n.answer for n in nodes],
        scores=[n.score for n in nodes],
    )


def _subsampled_cells(
    plan: EvalPlan, planned: PlannedJob, job: Job, samples: Samples, settings: Settings
) -> list[tuple[int, int, Cell]]:
    """``(arm, point, cell)`` for every arm the run serves and every point of its grid (a
    run with fewer samples than a point needs counts as wrong there)."""
    out = []
    c = sum(samples.correct)
    for a in planned.arms:
        arm = plan.spec.arms[a]
        values = plan.grids[a].values
        ks = [k for k in values if k <= samples.n]
        weighted = bool(arm.params.get("weighted"))
        if not ks:
            accuracy: dict[int, float] = {}
        elif arm.strategy == "best_of_n" and not weighted:
            accuracy = {k: best_of_k(samples, k) for k in ks}
        else:
            accuracy = majority_curve(
                samples,
                ks,
                weighted=weighted,
                seed=_mc_seed(plan, planned, a),
                draws=settings.eval_subsample_draws,
            )
        for point, k in enumerate(values):
            if k in accuracy:
                cell = Cell(
                    accuracy=accuracy[k],
                    pass_at_k=pass_at_k(samples.n, c, k),
                    usage=_prorated(job, k, samples.n, settings),
                    job_id=job.id,
                    estimated=k != samples.n,
                )
            else:
                cell = Cell(0.0, 0.0, _usage(job), job.id, False)
            out.append((a, point, cell))
    return out


def collect(
    session: Session,
    batch: ProblemBatch,
    plan: EvalPlan,
    settings: Settings,
    previous: Outcomes | None = None,
) -> Outcomes:
    """Every finished job's cells (``previous``: those collected before are kept and
    only the jobs finished since are read)."""
    index_of = {plan.job_id(i): i for i in range(int(batch.state.get("next", 0)))}
    known = dict(previous.by_job) if previous is not None else {}
    jobs = [
        job
        for job in session.scalars(
            select(Job).where(
                Job.batch_id == batch.id,
                Job.status.in_([JobStatus.succeeded, JobStatus.failed]),
            )
        )
        if job.id in index_of and job.id not in known
    ]
    planned = {job.id: plan.at(index_of[job.id]) for job in jobs}
    subsampled = [job.id for job in jobs if planned[job.id].point is None]
    trees = load_trees(session, subsampled)
    for job in jobs:
        p = planned[job.id]
        if p.point is not None:
            correct = bool((job.result or {}).get("correct")) and job.status == JobStatus.succeeded
            cell = Cell(1.0 if correct else 0.0, None, _usage(job), job.id, False)
            known[job.id] = JobCells(p, [(p.arm, p.point, cell)])
            continue
        tree = trees.get(job.id)
        samples = _samples(tree) if tree is not None else Samples([], [], [])
        known[job.id] = JobCells(
            p,
            _subsampled_cells(plan, p, job, samples, settings),
            sum(samples.correct) / samples.n if samples.n else None,
        )
    return Outcomes(plan, known)


def _ci_seed(plan: EvalPlan, *parts: object) -> int:
    digest = hashlib.sha256(":".join(map(str, (plan.seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _interval(values: Sequence[float], seed: int) -> list[float] | None:
    ci = bootstrap_ci(values, seed=seed)
    return [round(ci[0], 4), round(ci[1], 4)] if ci else None


def points(outcomes: Outcomes) -> list[dict[str, Any]]:
    """One row per (arm, grid value)."""
    plan = outcomes.plan
    rows = []
    for a, arm in enumerate(plan.spec.arms):
        grid = plan.grids[a]
        for point, value in enumerate(grid.values):
            values = outcomes.problem_values(a, point)
            count = len(values)
            row: dict[str, Any] = {
                "arm": arm.name,
                "strategy": arm.strategy,
                "key": grid.key,
                "value": value,
                "problems": count,
                "accuracy": None,
                "ci95": None,
                "pass_at_k": None,
                "pass_at_k_ci95": None,
                "estimated": any(v["estimated"] for v in values.values()),
            }
            if count:
                accs = [v["accuracy"] for v in values.values()]
                row["accuracy"] = round(sum(accs) / count, 4)
                row["ci95"] = _interval(accs, _ci_seed(plan, "acc", a, point))
                passes = [v["pass_at_k"] for v in values.values() if v["pass_at_k"] is not None]
                if passes:
                    row["pass_at_k"] = round(sum(passes) / len(passes), 4)
                    row["pass_at_k_ci95"] = _interval(passes, _ci_seed(plan, "pass", a, point))
            for key in USAGE:
                total = sum(v[key] for v in values.values())
                row[f"mean_{key}"] = round(total / count, 4) if count else None
                row[f"total_{key}"] = round(total, 4)
            row["mean_tokens"] = (
                round(row["mean_prompt_tokens"] + row["mean_completion_tokens"], 2)
                if count
                else None
            )
            rows.append(row)
    return rows


def comparisons(outcomes: Outcomes) -> list[dict[str, Any]]:
    """Each pair of arms at each grid value they share (matched compute)."""
    plan = outcomes.plan
    out = []
    arms = plan.spec.arms
    for a in range(len(arms)):
        for b in range(a + 1, len(arms)):
            ga, gb = plan.grids[a], plan.grids[b]
            if ga.key != gb.key:
                continue
            for value in sorted(set(ga.values) & set(gb.values)):
                va = outcomes.problem_values(a, ga.values.index(value))
                vb = outcomes.problem_values(b, gb.values.index(value))
                both = sorted(set(va) & set(vb))
                if not both:
                    continue
                test = paired_difference(
                    [va[p]["accuracy"] for p in both],
                    [vb[p]["accuracy"] for p in both],
                    seed=_ci_seed(plan, "diff", a, b, value),
                )
                out.append(
                    {
                        "arm_a": arms[a].name,
                        "arm_b": arms[b].name,
                        "key": ga.key,
                        "value": value,
                        "mean_tokens_a": round(
                            sum(va[p]["prompt_tokens"] + va[p]["completion_tokens"] for p in both)
                            / len(both),
                            2,
                        ),
                        "mean_tokens_b": round(
                            sum(vb[p]["prompt_tokens"] + vb[p]["completion_tokens"] for p in both)
                            / len(both),
                            2,
                        ),
                        **test,
                    }
                )
    return out


def difficulty_bins(batch: ProblemBatch, outcomes: Outcomes) -> tuple[str, dict[int, str]] | None:
    """Each problem's difficulty label: the dataset's ``difficulty`` where rows give it,
    else a probe from the run (1 - pass@1 of the subsampled arms' samples, in thirds)."""
    given = {i: row["difficulty"] for i, row in enumerate(batch.problems) if "difficulty" in row}
    if given:
        numeric = all(isinstance(v, int | float) for v in given.values())
        if numeric and len(set(given.values())) > 5:
            ordered = sorted(given.values())
            cuts = [ordered[len(ordered) // 3], ordered[2 * len(ordered) // 3]]
            names = ("low", "medium", "high")
            return "dataset", {
                i: names[sum(1 for c in cuts if float(v) >= c)] for i, v in given.items()
            }
        return "dataset", {i: str(v) for i, v in given.items()}
    if not outcomes.pass1:
        return None
    labels = {}
    for problem, rates in outcomes.pass1.items():
        hardness = 1 - sum(rates) / len(rates)
        labels[problem] = next(label for edge, label in _PROBE_BINS if hardness < edge)
    return "probe", labels


def by_difficulty(batch: ProblemBatch, outcomes: Outcomes) -> dict[str, Any] | None:
    found = difficulty_bins(batch, outcomes)
    if found is None:
        return None
    source, labels = found
    order = [label for _, label in _PROBE_BINS] if source == "probe" else None
    names = order or list(dict.fromkeys(labels[i] for i in sorted(labels)))
    plan = outcomes.plan
    bins = []
    for label in names:
        members = {i for i, lab in labels.items() if lab == label}
        if not members:
            continue
        rows = []
        for a, arm in enumerate(plan.spec.arms):
            for point, value in enumerate(plan.grids[a].values):
                values = outcomes.problem_values(a, point)
                accs = [values[p]["accuracy"] for p in members if p in values]
                rows.append(
                    {
                        "arm": arm.name,
                        "value": value,
                        "problems": len(accs),
                        "accuracy": round(sum(accs) / len(accs), 4) if accs else None,
                    }
                )
        bins.append({"label": label, "problems": len(members), "points": rows})
    return {"source": source, "bins": bins}


def problem_rows(batch: ProblemBatch, outcomes: Outcomes) -> list[dict[str, Any]]:
    """One row per (problem, arm, grid value): the per-problem results."""
    plan = outcomes.plan
    found = difficulty_bins(batch, outcomes)
    labels = found[1] if found else {}
    rows = []
    for a, arm in enumerate(plan.spec.arms):
        grid = plan.grids[a]
        for point, value in enumerate(grid.values):
            for problem, v in sorted(outcomes.problem_values(a, point).items()):
                row = batch.problems[problem]
                rows.append(
                    {
                        "problem": problem,
                        "problem_id": row.get("id"),
                        "reference": row.get("reference"),
                        "difficulty": labels.get(problem),
                        "arm": arm.name,
                        "key": grid.key,
                        "value": value,
                        "accuracy": round(v["accuracy"], 6),
                        "pass_at_k": None if v["pass_at_k"] is None else round(v["pass_at_k"], 6),
                        **{k: round(v[k], 4) for k in USAGE},
                        "estimated": v["estimated"],
                        "job_ids": " ".join(v["job_ids"]),
                    }
                )
    return rows


def summary_of(batch: ProblemBatch, outcomes: Outcomes) -> dict[str, Any]:
    """The curves: points, paired comparisons and the per-difficulty breakdown."""
    return {
        "points": points(outcomes),
        "comparisons": comparisons(outcomes),
        "by_difficulty": by_difficulty(batch, outcomes),
    }


def summarize(
    session: Session, batch: ProblemBatch, plan: EvalPlan, settings: Settings
) -> dict[str, Any]:
    """:func:`summary_of` the eval's finished jobs."""
    return summary_of(batch, collect(session, batch, plan, settings))
