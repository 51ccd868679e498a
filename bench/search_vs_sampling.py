"""Search beats sampling: step-level search against best-of-N at matched compute.

Two comparisons, each run as real ttc jobs (SQLite, the in-process executor, the simulator
over HTTP) on problems with ground truth:

Multi-step math (matched generated tokens)
    Synthetic word problems with exactly 6 steps; each generated step is right with
    ``step_accuracy`` 0.8 (so one whole sample is right with 0.8^6 = 0.26). The step scorer
    is the simulator's process reward model over the batched ``json`` protocol with
    ``prm_noise`` 0.25 (a step's logit is +-2.2 plus Gaussian noise of sd 2.5). Beam search
    (N=8 candidates per depth, beam width 2, max depth 8) runs first; best-of-N then gets the
    smallest n whose mean completion tokens per problem are at least beam search's. Both rank
    by the same PRM (best-of-N scores each sample split at blank lines); the ``math`` verifier
    sees the reference only to mark the chosen answer right or wrong.
Game of 24 (matched requests)
    The Tree-of-Thoughts test set (ranks 901-1000 of the bundled 1,362 puzzles). ToT BFS
    proposes k moves per state, values each new state with the LLM judge (3 votes of sure /
    likely / impossible) and keeps the best ``breadth`` states, for 3 moves plus the answer
    step. Best-of-N draws, for each puzzle, as many whole solutions as the ToT job made
    generation requests to the simulator for that puzzle (its proposal requests *and* its
    judge requests), one request per sample (an endpoint with ``max_n_per_request`` 1), and
    checks them with the ``game24`` verifier (the puzzle's four numbers are the reference:
    a legitimate checker, so best-of-N here is pass@N). The simulator runs with the Game of
    24 knobs calibrated to the ToT paper's chain-of-thought numbers (:data:`PAPER_GAME24`),
    and with ablations that switch one mechanism off (:data:`GAME24_CONFIGS`).

Determinism: ttc derives a child's seed from the job seed and the parent's position in the
tree, and the judge's from the job seed and the state judged. This benchmark was written
before that and still pins both its own way (job ids are uuid5 of a stable key, the judge's
seed is hashed from the partial solution judged), which also counts the judge's requests
per question.

    .venv/bin/python bench/search_vs_sampling.py [--math-problems 200] [--seeds 2]
        [--skip-math | --skip-game24]

prints one table per comparison (accuracy with a 95% Wilson interval, mean generated tokens
and mean generation requests per problem, the judge's included) and the paired differences.
The math part takes ~22 min and the Game of 24 part ~5 min on a 2-core machine; the two
flags let them run side by side. ``tests/engine/test_simulator_calibration.py`` imports the
experiment functions and runs them once each.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar
from unittest import mock

from sqlalchemy import select

from ttc_cli.migrate import upgrade
from ttc_core.engine.runtime import EngineContext, make_http_client
from ttc_core.executor import run_job
from ttc_core.scoring import PartialSolution, registry
from ttc_core.scoring.judge import LlmJudgeScorer
from ttc_core.service import submission
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import EndpointConfig, Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job
from ttc_sim.config import SimConfig
from ttc_sim.model import generate
from ttc_sim.rng import stable_seed
from ttc_sim.runner import SimServer
from ttc_sim.tasks import Problem, game24_problems, synthetic_problems

# ------------------------------------------------------------------------------ knobs

#: Per-step correctness of generated math steps (model-name override on the generate endpoint).
STEP_ACCURACY = 0.8
#: Noise of the simulated PRM, in the reward endpoint's model name and server-wide too: the
#: ``json`` PRM protocol sent no ``model`` field before e5f48da, and then the simulator used
#: its server config; with both set the result does not depend on that.
PRM_NOISE = 0.25
MATH_STEPS = 6
BEAM = {"n": 8, "beam_width": 2, "max_depth": 8}
BEAM_WIDE = {"n": 16, "beam_width": 4, "max_depth": 8}

#: ToT BFS as in the paper (b=5), with 5 proposals per state; 3 moves + the answer step.
TOT = {"k": 5, "breadth": 5, "max_depth": 4}
JUDGE_SAMPLES = 3
GAME24_RANKS = (901, 1001)
#: ``game24_skill`` at which one whole sample solves ~4% of ranks 901-1000, as GPT-4 with a
#: chain-of-thought prompt did in the ToT paper (4.0%); the default 0.5 solves ~20%. Every
#: puzzle alike and a miss a random legal move: best-of-60 then solves ~0.9 (the paper's CoT
#: best-of-100: 0.49).
CALIBRATED_GAME24_SKILL = 0.2
#: The simulator's Game of 24 knobs solved (over d ~ N(0, 1), see ``bench/RESULTS.md``) for
#: three numbers the ToT paper reports for GPT-4 with a chain-of-thought prompt on ranks
#: 901-1000: ~60% of samples fail at their first move (first-move skill 0.40 on average), one
#: sample solves 4.0%, best-of-100 solves 49%. A miss is a dead end (a blunder), puzzles differ
#: in difficulty (sd 1.2 logits), and a sample's second and third moves, made on a board it
#: wrote itself, are weaker (0.13 on the median puzzle) than a move on a board the prompt
#: shows (0.37), which is every ToT proposal. The value judge keeps the simulator's default
#: vote accuracy (0.8): the paper gives no number to calibrate it to.
PAPER_GAME24: dict[str, Any] = {
    "game24_propose_skill": 0.37,
    "game24_sample_skill": 0.13,
    "game24_difficulty_sd": 1.2,
    "game24_mistakes": "dead_end",
}
#: Label, simulator knobs and ToT parameters of each Game of 24 comparison the benchmark
#: runs: the calibration, its sensitivity to the judge and to dropping duplicate states, and
#: ablations that switch one mechanism off (each calibrated to one sample solving ~4%).
GAME24_CONFIGS: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
    ("paper calibration", PAPER_GAME24, TOT),
    ("paper calibration, judge votes 0.7", {**PAPER_GAME24, "game24_value_accuracy": 0.7}, TOT),
    (
        "difficulty only (one skill 0.17, sd 1.2)",
        {"game24_skill": 0.17, "game24_difficulty_sd": 1.2, "game24_mistakes": "dead_end"},
        TOT,
    ),
    (
        "per-move skills only (0.40 / 0.32, sd 0)",
        {"game24_propose_skill": 0.40, "game24_sample_skill": 0.32, "game24_mistakes": "dead_end"},
        TOT,
    ),
    ("uniform (game24_skill 0.2, random misses)", {"game24_skill": CALIBRATED_GAME24_SKILL}, TOT),
    ("paper calibration, judge votes 0.9", {**PAPER_GAME24, "game24_value_accuracy": 0.9}, TOT),
    ("paper calibration, ToT keeps duplicates", PAPER_GAME24, {**TOT, "dedupe": False}),
)


def sim_config(**overrides: Any) -> SimConfig:
    """The simulator used by the comparisons: ~2 ms per request, many slots."""
    base: dict[str, Any] = {
        "base_latency_s": 0.002,
        "per_token_latency_s": 0.0,
        "reward_latency_s": 0.001,
        "slots": 1024,
        "prm_noise": PRM_NOISE,
    }
    return SimConfig(**{**base, **overrides})


def generate_model(**knobs: Any) -> str:
    """``sim-gsm8k;key=value;...`` (per-request simulator overrides)."""
    return ";".join(["sim-gsm8k", *(f"{k}={v}" for k, v in knobs.items())])


def settings_for(database_url: str, sim: SimServer, model: str) -> Settings:
    return Settings(
        database_url=database_url,
        endpoints={
            "gen": EndpointConfig(base_url=sim.base_url, model=model, max_concurrency=256),
            # One sample per request: best-of-N's requests equal its samples.
            "gen1": EndpointConfig(
                base_url=sim.base_url, model=model, max_concurrency=256, max_n_per_request=1
            ),
            "prm": EndpointConfig(
                base_url=sim.url, model=f"sim-prm;prm_noise={PRM_NOISE}", kind="reward"
            ),
        },
        expand_batch_samples=128,
    )


# ---------------------------------------------------------------------- determinism

_JOB_NAMESPACE = uuid.UUID("0b7e4c52-5d1f-4a3e-8f7a-2c9d1e6b3a40")


class SeededJudge(LlmJudgeScorer):
    """The LLM judge with a seed per judged partial solution (ttc sends none), counting its
    requests per question: ``job.requests`` leaves the judge's requests out."""

    #: Judge requests per question since the last :func:`seeded_judge` began.
    requests: ClassVar[Counter[str]] = Counter()

    def request(self, item: PartialSolution) -> Any:
        req = super().request(item)
        endpoint = getattr(self.client, "endpoint", None)
        per_request = getattr(endpoint, "max_n_per_request", req.n)
        SeededJudge.requests[item.question] += -(-req.n // per_request)
        return dataclasses.replace(req, seed=stable_seed("judge", item.question, *item.steps) >> 33)


@contextmanager
def seeded_judge() -> Iterator[None]:
    SeededJudge.requests.clear()
    with mock.patch.object(registry, "LlmJudgeScorer", SeededJudge):
        yield


def create(bench: Bench, spec: JobSpec, key: str) -> str:
    """Create a job whose id is uuid5(``key``), so its node ids and seeds repeat."""
    fixed = uuid.uuid5(_JOB_NAMESPACE, key)
    with (
        mock.patch.object(submission, "uuid", SimpleNamespace(uuid4=lambda: fixed)),
        bench.db.transaction() as session,
    ):
        return create_job(session, spec, bench.settings, tenant="bench").id


# ------------------------------------------------------------------------ running


@dataclass(frozen=True)
class Outcome:
    """One finished job."""

    problem: str
    correct: bool
    completion_tokens: int
    #: Generation requests (``job.requests`` less the judge's, which it counts too).
    requests: int
    #: Requests of the LLM judge (counted by :class:`SeededJudge`).
    judge_requests: int
    nodes: int
    #: The chosen node's score (a PRM aggregate or a judge value, or a verifier score).
    score: float | None = None
    answer: str | None = None

    @property
    def all_requests(self) -> int:
        return self.requests + self.judge_requests


@dataclass
class Bench:
    """Where jobs run: settings, the database and the simulator."""

    settings: Settings
    db: Database
    sim: SimServer


def run_jobs(bench: Bench, job_ids: Sequence[str], problems: Sequence[str]) -> list[Outcome]:
    """Run the jobs to the end, all at once, on one event loop; outcomes in order."""
    if len(set(problems)) != len(problems):
        raise ValueError("one job per problem per run: judge requests are counted per question")

    async def go() -> None:
        ctx = EngineContext(settings=bench.settings, db=bench.db, http=make_http_client())
        try:
            await asyncio.gather(*(run_job(ctx, job_id) for job_id in job_ids))
        finally:
            await ctx.aclose()

    with seeded_judge():
        asyncio.run(go())
        return collect(bench, job_ids, problems)


def collect(bench: Bench, job_ids: Sequence[str], problems: Sequence[str]) -> list[Outcome]:
    out: list[Outcome] = []
    with bench.db.session() as session:
        jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(list(job_ids))))}
        for job_id, problem in zip(job_ids, problems, strict=True):
            job = jobs[job_id]
            if job.status != "succeeded":
                raise RuntimeError(f"job {job_id} ({problem}) {job.status}: {job.error}")
            judge = SeededJudge.requests.get(job.prompt or "", 0)
            out.append(
                Outcome(
                    problem=problem,
                    correct=bool((job.result or {}).get("correct")),
                    completion_tokens=job.completion_tokens,
                    # job.requests counts the judge's requests too (they were paid for).
                    requests=job.requests - judge,
                    judge_requests=judge,
                    nodes=job.node_count,
                    score=(job.result or {}).get("score"),
                    answer=(job.result or {}).get("answer"),
                )
            )
    return out


# ---------------------------------------------------------------------- statistics


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Paired:
    """Paired difference of two strategies' per-problem correctness (a minus b)."""

    n: int
    diff: float
    low: float
    high: float
    a_only: int  # problems a solves and b does not
    b_only: int

    def __str__(self) -> str:
        return (
            f"{self.diff:+.3f} [95% CI {self.low:+.3f}, {self.high:+.3f}] over {self.n} problems "
            f"(only search right: {self.a_only}, only sampling right: {self.b_only})"
        )


def paired(a: Sequence[Outcome], b: Sequence[Outcome], z: float = 1.96) -> Paired:
    assert [o.problem for o in a] == [o.problem for o in b]
    d = [int(x.correct) - int(y.correct) for x, y in zip(a, b, strict=True)]
    n = len(d)
    mean = sum(d) / n
    sd = statistics.stdev(d) if n > 1 else 0.0
    half = z * sd / math.sqrt(n)
    return Paired(
        n,
        mean,
        mean - half,
        mean + half,
        sum(1 for x in d if x > 0),
        sum(1 for x in d if x < 0),
    )


def accuracy(outcomes: Sequence[Outcome]) -> float:
    return sum(o.correct for o in outcomes) / len(outcomes)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


@dataclass(frozen=True)
class Row:
    strategy: str
    parameters: str
    outcomes: tuple[Outcome, ...]

    def cells(self) -> list[str]:
        k, n = sum(o.correct for o in self.outcomes), len(self.outcomes)
        lo, hi = wilson(k, n)
        return [
            self.strategy,
            self.parameters,
            f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]",
            f"{mean([o.completion_tokens for o in self.outcomes]):.0f}",
            f"{mean([o.all_requests for o in self.outcomes]):.1f}",
        ]


def table(rows: Sequence[Row]) -> str:
    head = ["strategy", "parameters", "accuracy [95% CI]", "mean tokens", "mean requests"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------ math


def math_spec(
    strategy: str, problem: Problem, params: dict[str, Any], aggregation: str, seed: int
) -> JobSpec:
    return JobSpec(
        strategy=strategy,
        endpoint="gen",
        prompt=problem.question,
        params=params,
        verifier={"kind": "math"},  # the reference marks the chosen answer, nothing else
        prm={"kind": "prm", "endpoint": "prm", "protocol": "json", "aggregation": aggregation},
        reference=problem.answer,
        seed=seed,
        cache="off",  # compute is what is measured: every sample generated
    )


def run_strategy(
    bench: Bench,
    strategy: str,
    problems: Sequence[Problem],
    params: dict[str, Any],
    aggregation: str,
    seed: int,
    tag: str = "",
) -> list[Outcome]:
    ids = [
        create(
            bench,
            math_spec(strategy, p, params, aggregation, seed + i),
            f"{tag}{strategy}/{aggregation}/{p.id}/{seed + i}/{params}",
        )
        for i, p in enumerate(problems)
    ]
    return run_jobs(bench, ids, [p.id for p in problems])


@dataclass(frozen=True)
class MathResult:
    beam: tuple[Outcome, ...]
    best_of_n: tuple[Outcome, ...]
    n: int  # best-of-N's n
    tokens_per_sample: float

    @property
    def gap(self) -> Paired:
        return paired(self.beam, self.best_of_n)


def run_math(
    bench: Bench,
    problems: Sequence[Problem],
    *,
    beam: dict[str, Any] = BEAM,
    beam_aggregation: str = "min",
    bon_aggregation: str = "min",
    seed: int = 1000,
    pilot: int = 4,
    tag: str = "",
) -> MathResult:
    """Beam search, then best-of-N with at least beam search's mean completion tokens."""
    beam_out = run_strategy(bench, "beam_search", problems, dict(beam), beam_aggregation, seed, tag)
    beam_tokens = mean([o.completion_tokens for o in beam_out])
    # Tokens of one whole sample: a pilot best-of-`pilot` run on the same problems.
    pilot_out = run_strategy(
        bench, "best_of_n", problems, {"n": pilot}, bon_aggregation, seed, f"{tag}pilot/"
    )
    per_sample = mean([o.completion_tokens for o in pilot_out]) / pilot
    n = math.ceil(beam_tokens / per_sample)
    bon_out = run_strategy(bench, "best_of_n", problems, {"n": n}, bon_aggregation, seed, tag)
    while mean([o.completion_tokens for o in bon_out]) < beam_tokens:  # pragma: no cover
        n += 1
        bon_out = run_strategy(bench, "best_of_n", problems, {"n": n}, bon_aggregation, seed, tag)
    return MathResult(tuple(beam_out), tuple(bon_out), n, per_sample)


# ------------------------------------------------------------------------ game of 24


def game24_spec(
    strategy: str, problem: Problem, params: dict[str, Any], seed: int, **kw: Any
) -> JobSpec:
    return JobSpec(
        strategy=strategy,
        prompt=problem.question,
        params=params,
        verifier={"kind": "game24"},
        reference=" ".join(str(n) for n in problem.numbers),  # the puzzle itself
        seed=seed,
        cache="off",  # compute is what is measured: every sample generated
        **kw,
    )


@dataclass(frozen=True)
class Game24Result:
    tot: tuple[Outcome, ...]
    #: Best-of-N with, per puzzle, as many one-sample requests as ToT made for it.
    matched_requests: tuple[Outcome, ...]
    #: Best-of-N with at least ToT's mean generated tokens (its judge's replies included).
    matched_tokens: tuple[Outcome, ...]
    n_tokens: int  # best-of-N's n for matched tokens
    #: Generation requests and completion tokens the simulator served during the ToT run.
    sim_requests: int
    sim_tokens: int

    @property
    def judge_tokens(self) -> int:
        return self.sim_tokens - sum(o.completion_tokens for o in self.tot)

    @property
    def tot_tokens(self) -> float:
        """Mean generated tokens per puzzle of ToT, the judge's included."""
        return self.sim_tokens / len(self.tot)


def game24_best_of_n(
    bench: Bench,
    problems: Sequence[Problem],
    ns: Sequence[int],
    *,
    seed: int,
    tag: str,
    endpoint: str = "gen1",
) -> list[Outcome]:
    """Best-of-``ns[i]`` on puzzle ``i``. The job ids (so the samples) do not depend on
    ``endpoint``: ``gen1`` sends one request per sample, ``gen`` up to 16 samples per
    request, and the samples are the same (sample ``j`` gets seed ``s + j`` either way)."""
    ids = [
        create(
            bench,
            game24_spec("best_of_n", p, {"n": n}, seed + i, endpoint=endpoint),
            f"best_of_n/{tag}/{p.id}/{seed + i}/{n}",
        )
        for i, (p, n) in enumerate(zip(problems, ns, strict=True))
    ]
    return run_jobs(bench, ids, [p.id for p in problems])


def run_game24(
    bench: Bench,
    problems: Sequence[Problem],
    *,
    tot: dict[str, Any] = TOT,
    seed: int = 2000,
    matched_tokens: bool = True,
    bon_endpoint: str = "gen1",
) -> Game24Result:
    """ToT BFS; then best-of-N at matched requests (per puzzle: as many samples as ToT made
    requests) and, if asked, at matched generated tokens (mean per puzzle, the judge's
    replies included)."""
    bench.sim.reset_metrics()
    prm = {"kind": "llm_judge", "endpoint": "gen", "samples": JUDGE_SAMPLES}
    ids = [
        create(
            bench,
            game24_spec("tot_bfs", p, dict(tot), seed + i, endpoint="gen", prm=prm),
            f"tot_bfs/{p.id}/{seed + i}/{tot}",
        )
        for i, p in enumerate(problems)
    ]
    tot_out = run_jobs(bench, ids, [p.id for p in problems])
    metrics = bench.sim.metrics
    sim_requests = int(metrics["requests_total"])
    sim_tokens = int(metrics["completion_tokens_total"])
    by_requests = game24_best_of_n(
        bench,
        problems,
        [o.all_requests for o in tot_out],
        seed=seed,
        tag="requests",
        endpoint=bon_endpoint,
    )
    per_sample = sum(o.completion_tokens for o in by_requests) / sum(o.nodes for o in by_requests)
    n_tokens = math.ceil(sim_tokens / len(problems) / per_sample) if matched_tokens else 0
    by_tokens = (
        game24_best_of_n(
            bench, problems, [n_tokens] * len(problems), seed=seed, tag="tokens", endpoint="gen1"
        )
        if matched_tokens
        else []
    )
    return Game24Result(
        tuple(tot_out),
        tuple(by_requests),
        tuple(by_tokens),
        n_tokens,
        sim_requests,
        sim_tokens,
    )


def single_sample_accuracy(problems: Sequence[Problem], cfg: SimConfig, samples: int) -> float:
    """Mean chance that one whole sample solves a puzzle, straight from the simulator's model
    (no HTTP): ``samples`` seeds per puzzle."""
    right = sum(generate(p, seed, cfg).correct for p in problems for seed in range(samples))
    return right / (len(problems) * samples)


# ------------------------------------------------------------------------ main


@contextmanager
def bench_for(sim: SimServer, model: str) -> Iterator[Bench]:
    """A fresh SQLite database with migrations applied, endpoints on ``sim``."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'ttc.db'}"
        upgrade(url)
        db = Database(url)
        try:
            yield Bench(settings_for(url, sim, model), db, sim)
        finally:
            db.engine.dispose()


def _beam_label(beam: dict[str, Any], aggregation: str) -> str:
    return (
        f"N={beam['n']}, M={beam['beam_width']}, depth<={beam['max_depth']}, PRM agg={aggregation}"
    )


def math_section(problems: int, seeds: int, beams: Sequence[dict[str, Any]]) -> str:
    """Beam search vs best-of-N at matched tokens, for every PRM aggregation; seed set ``s``
    uses problem set ``synthetic_problems(problems, seed=11 + s, steps=6)`` and job seeds
    ``1000 + 100_000 * s + i``."""
    out = [
        f"### Multi-step math: {seeds} x {problems} synthetic 6-step problems, step_accuracy "
        f"{STEP_ACCURACY}, PRM json with prm_noise {PRM_NOISE}; best-of-N at matched tokens",
        "",
    ]
    rows: list[Row] = []
    notes: list[str] = []
    with (
        SimServer(sim_config()) as sim,
        bench_for(sim, generate_model(step_accuracy=STEP_ACCURACY)) as b,
    ):
        for beam in beams:
            beam_by: dict[str, list[Outcome]] = {a: [] for a in AGGREGATIONS}
            bon_by: dict[str, list[Outcome]] = {a: [] for a in AGGREGATIONS}
            ns: dict[str, list[int]] = {a: [] for a in AGGREGATIONS}
            per_seed: list[str] = []
            for s in range(seeds):
                probs = synthetic_problems(problems, seed=11 + s, steps=MATH_STEPS)
                this: dict[str, MathResult] = {}
                for agg in AGGREGATIONS:
                    began = time.perf_counter()
                    r = run_math(
                        b,
                        probs,
                        beam=beam,
                        beam_aggregation=agg,
                        bon_aggregation=agg,
                        seed=1000 + 100_000 * s,
                        tag=f"{beam}/",
                    )
                    print(
                        f"  math {beam} {agg} set {s}: beam {accuracy(r.beam):.3f}, "
                        f"best-of-{r.n} {accuracy(r.best_of_n):.3f} "
                        f"({time.perf_counter() - began:.1f} s)",
                        flush=True,
                    )
                    this[agg] = r
                    beam_by[agg] += r.beam
                    bon_by[agg] += r.best_of_n
                    ns[agg].append(r.n)
                test_pair = paired(this["min"].beam, this["prod"].best_of_n)
                per_seed.append(f"set {s}: {test_pair}")
            for agg in AGGREGATIONS:
                rows.append(Row("beam_search", _beam_label(beam, agg), tuple(beam_by[agg])))
                n_label = "/".join(map(str, ns[agg]))
                rows.append(Row("best_of_n", f"n={n_label}, PRM agg={agg}", tuple(bon_by[agg])))
            best_beam = max(AGGREGATIONS, key=lambda a: accuracy(beam_by[a]))
            best_bon = max(AGGREGATIONS, key=lambda a: accuracy(bon_by[a]))
            label = f"N={beam['n']}, M={beam['beam_width']}"
            notes.append(
                f"- {label}: best aggregation for beam search `{best_beam}`, for best-of-N "
                f"`{best_bon}`. Beam (`min`) - best-of-N (`prod`), paired: "
                f"{paired(beam_by['min'], bon_by['prod'])}; per seed set: " + "; ".join(per_seed)
            )
            notes.append(
                f"- {label}: beam - best-of-N with the same aggregation: "
                + "; ".join(
                    f"`{a}` {paired(beam_by[a], bon_by[a]).diff:+.3f}" for a in AGGREGATIONS
                )
            )
    return "\n".join([*out, table(rows), "", *notes])


AGGREGATIONS = ("last", "min", "prod", "mean")


def game24_section(
    seeds: int, configs: Sequence[tuple[str, dict[str, Any], dict[str, Any]]]
) -> str:
    problems = game24_problems(*GAME24_RANKS)
    out = [
        f"### Game of 24: ranks {GAME24_RANKS[0]}-{GAME24_RANKS[1] - 1} ({len(problems)} puzzles) "
        f"x {seeds} job seeds; ToT k={TOT['k']}, b={TOT['breadth']}, judge {JUDGE_SAMPLES} votes",
        "",
    ]
    rows: list[Row] = []
    notes: list[str] = []
    for label, knobs, tot in configs:
        cfg = sim_config(**knobs)
        pass1 = single_sample_accuracy(problems, cfg, 200)
        with SimServer(sim_config()) as sim, bench_for(sim, generate_model(**knobs)) as b:
            tot_all: list[Outcome] = []
            req_all: list[Outcome] = []
            tok_all: list[Outcome] = []
            n_tok = []
            per_seed: list[str] = []
            for s in range(seeds):
                began = time.perf_counter()
                r = run_game24(b, problems, tot=tot, seed=2000 + 100_000 * s)
                print(
                    f"  game24 {label} seed set {s}: ToT {accuracy(r.tot):.3f}, best-of-N "
                    f"{accuracy(r.matched_requests):.3f} ({time.perf_counter() - began:.1f} s)",
                    flush=True,
                )
                counted = sum(o.all_requests for o in r.tot)
                if counted != r.sim_requests:
                    raise RuntimeError(
                        f"ToT requests: counted {counted}, simulator saw {r.sim_requests}"
                    )
                per_seed.append(f"set {s}: {paired(r.tot, r.matched_requests)}")
                tot_all += r.tot
                req_all += r.matched_requests
                tok_all += r.matched_tokens
                n_tok.append(r.n_tokens)
        rows.append(Row("tot_bfs", f"{label}; k={tot['k']}, b={tot['breadth']}", tuple(tot_all)))
        rows.append(Row("best_of_n", f"{label}; n = ToT's requests per puzzle", tuple(req_all)))
        rows.append(
            Row(
                "best_of_n",
                f"{label}; n={'/'.join(map(str, n_tok))} (ToT's tokens)",
                tuple(tok_all),
            )
        )
        proposal = mean([o.requests for o in tot_all])
        judge = mean([o.judge_requests for o in tot_all])
        notes.append(
            f"- {label} (`{generate_model(**knobs)}`): one whole sample is right {pass1:.3f} of "
            f"the time (mean over the puzzles, 200 seeds each, from the simulator's model); ToT "
            f"made {proposal:.1f} proposal + {judge:.1f} judge requests per puzzle. ToT - "
            f"best-of-N at matched requests {paired(tot_all, req_all)}; per seed set: "
            + "; ".join(per_seed)
            + f"; at matched tokens {paired(tot_all, tok_all)}"
        )
    return "\n".join([*out, table(rows), "", *notes])


def main() -> None:  # pragma: no cover - run by hand
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--math-problems", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=2, help="job seed sets per comparison")
    ap.add_argument("--skip-math", action="store_true")
    ap.add_argument("--skip-game24", action="store_true")
    ap.add_argument(
        "--game24-config",
        type=int,
        action="append",
        help="run only these entries of GAME24_CONFIGS (0-based; repeatable)",
    )
    args = ap.parse_args()
    began = time.perf_counter()
    sections = []
    if not args.skip_math:
        sections.append(math_section(args.math_problems, args.seeds, [BEAM, BEAM_WIDE]))
        print(sections[-1], flush=True)
    if not args.skip_game24:
        chosen = args.game24_config or range(len(GAME24_CONFIGS))
        sections.append(game24_section(args.seeds, [GAME24_CONFIGS[i] for i in chosen]))
        print(sections[-1], flush=True)
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
