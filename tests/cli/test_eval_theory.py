"""``ttc eval`` on simulated problems whose per-sample accuracy p is known (ttc_sim's
``graded`` family): best-of-n with an oracle verifier, self-consistency and pass@k at
n = 1..64, all from one run of 64 samples per problem, land within 3 standard errors
of their closed forms (pass@k = 1 - (1 - p)^k per problem; majority@k from the
multinomial of the right answer and the simulator's weighted distractors, ties split
evenly).

The standard errors are of the estimators themselves, given each problem's p:
pass@k's exactly (its estimator's variance over c ~ Binomial(64, p)), majority@k's
by Hoeffding's bound for a U-statistic of degree k from n samples, Var <= (k / n)
Var(kernel), plus the Monte-Carlo term Var(kernel) / draws.

The whole path is real: ``ttc serve`` with the in-process executor and SQLite, the
simulator over HTTP, the CLI uploading the dataset, following the progress and writing
the exports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from ttc_cli.main import main
from ttc_cli.stack import Proc, free_port, wait_http
from ttc_core.evals.estimators import pass_at_k
from ttc_sim.config import SimConfig
from ttc_sim.model import _distractors
from ttc_sim.tasks import graded_accuracy, graded_problems

PROBLEMS = 40
N = 64
GRID = [1, 2, 4, 8, 16, 32, 64]
DRAWS = 1000  # Settings.eval_subsample_draws
SIM = SimConfig()  # the endpoint's model is the default sim-gsm8k


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ttc sim`` and ``ttc serve`` (in-process executor, SQLite) as child processes, so
    that neither waits on this process's interpreter while the CLI polls."""
    logs = tmp_path_factory.mktemp("eval-theory")
    sim_port, api_port = free_port(), free_port()
    sim = Proc(
        ["sim", "--port", str(sim_port), "--base-latency-s", "0.002", "--per-token-latency-s", "0"],
        {},
        logs / "sim.log",
    )
    procs = [sim]
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/health", proc=sim)
        endpoints = {
            "sim": {
                "base_url": f"http://127.0.0.1:{sim_port}/v1",
                "model": "sim-gsm8k",
                "max_concurrency": 256,
                "max_n_per_request": 64,
            }
        }
        env = {
            "TTC_DATABASE_URL": f"sqlite:///{logs / 'ttc.db'}",
            "TTC_EXECUTOR": "local",
            "TTC_ENDPOINTS": json.dumps(endpoints),
        }
        api = Proc(
            ["serve", "--port", str(api_port), "--no-auth", "--migrate", "--log-level", "warning"],
            env,
            logs / "api.log",
        )
        procs.append(api)
        url = f"http://127.0.0.1:{api_port}"
        wait_http(url + "/health", timeout=60, proc=api)
        yield url
    finally:
        for proc in procs:
            proc.stop()


def _law(problem_id: str, answer: str) -> tuple[float, list[float]]:
    """p, and the probabilities of the distractors a wrong sample picks."""
    p = graded_accuracy(problem_id, SIM.graded_alpha, SIM.graded_beta)
    wrong = _distractors(problem_id, "graded", answer, SIM.distractors)
    weights = [SIM.graded_skew**i for i in range(len(wrong))]
    total = sum(weights)
    return p, [(1 - p) * w / total for w in weights]


@cache
def majority_closed_form(p: float, qs: tuple[float, ...], k: int) -> float:
    """P(the right answer leads the vote of k samples), ties split evenly: for each count
    x of right samples, the distractors' counts (multinomial over the rest) must all be
    <= x; each one at exactly x splits the win once more."""
    total = 0.0
    for x in range(1, k + 1):
        rest = k - x
        # poly[t, s]: sum over the distractors so far of prod q^c / c!, with s votes used
        # and t distractors tied with the right answer.
        poly = np.zeros((len(qs) + 1, rest + 1))
        poly[0, 0] = 1.0
        for q in qs:
            nxt = np.zeros_like(poly)
            for c in range(min(x, rest) + 1):
                term = q**c / math.factorial(c)
                tie = 1 if c == x else 0
                nxt[tie:, c:] += term * poly[: poly.shape[0] - tie, : rest + 1 - c]
            poly = nxt
        ways = math.factorial(k) * p**x / math.factorial(x)
        total += ways * sum(poly[t, rest] / (1 + t) for t in range(len(qs) + 1))
    return total


def _pass_variance(p: float, k: int) -> float:
    pmf = [math.comb(N, c) * p**c * (1 - p) ** (N - c) for c in range(N + 1)]
    values = [pass_at_k(N, c, k) for c in range(N + 1)]
    mean = sum(w * v for w, v in zip(pmf, values, strict=True))
    return sum(w * v * v for w, v in zip(pmf, values, strict=True)) - mean**2


def test_curves_from_one_run_match_closed_forms(api_url: str, tmp_path: Path) -> None:
    problems = graded_problems(PROBLEMS, seed=21)
    dataset = tmp_path / "graded.jsonl"
    dataset.write_text(
        "".join(
            json.dumps({"id": p.id, "prompt": p.question, "reference": p.answer}) + "\n"
            for p in problems
        )
    )
    out = tmp_path / "out"
    code = main(
        [
            "eval", str(dataset), "--server", api_url, "--endpoint", "sim",
            "--arm", "best_of_n:n=1,2,4,...,64", "--arm", "self_consistency:n=1,2,4,...,64",
            "--seed", "5", "--out", str(out), "--poll", "0.3",
        ]
    )  # fmt: skip
    assert code == 0
    points = [json.loads(line) for line in (out / "points.jsonl").read_text().splitlines()]
    by = {(p["arm"], p["value"]): p for p in points}
    assert sorted(by) == sorted((arm, k) for arm in ("best_of_n", "self_consistency") for k in GRID)
    laws = [_law(p.id, p.answer) for p in problems]
    report = []
    for k in GRID:
        oracle = sum(1 - (1 - p) ** k for p, _ in laws) / PROBLEMS
        pass_se = math.sqrt(sum(_pass_variance(p, k) for p, _ in laws)) / PROBLEMS
        majority = [majority_closed_form(p, tuple(qs), k) for p, qs in laws]
        vote = sum(majority) / PROBLEMS
        kernel = sum(m * (1 - m) for m in majority)
        factor = 1.0 if k == N else k / N + 1 / DRAWS  # exact at k = n (one subset)
        vote_se = math.sqrt(kernel * factor) / PROBLEMS
        bon, sc = by[("best_of_n", k)], by[("self_consistency", k)]
        report.append(
            f"k={k:<3} oracle {bon['accuracy']:.4f} vs {oracle:.4f} (se {pass_se:.4f})  "
            f"majority {sc['accuracy']:.4f} vs {vote:.4f} (se {vote_se:.4f})"
        )
        assert bon["problems"] == sc["problems"] == PROBLEMS
        # Both arms drew the same samples (the same seeds): the same coverage.
        assert bon["pass_at_k"] == sc["pass_at_k"]
        for name, got, expected, se in (
            ("best_of_n (oracle)", bon["accuracy"], oracle, pass_se),
            ("pass@k", bon["pass_at_k"], oracle, pass_se),
            ("self_consistency", sc["accuracy"], vote, vote_se),
        ):
            # Points are rounded to 4 decimals.
            assert abs(got - expected) <= 3 * se + 5e-5, (name, k, got, expected, se)
        assert bon["ci95"][0] <= bon["accuracy"] <= bon["ci95"][1]
        assert bon["mean_completion_tokens"] > 0 and bon["mean_requests"] >= 1
    print("\n".join(report))
    # Majority voting beats one sample and is beaten by the oracle at large k.
    assert by[("self_consistency", 64)]["accuracy"] > by[("self_consistency", 1)]["accuracy"]
    assert by[("best_of_n", 64)]["accuracy"] >= by[("self_consistency", 64)]["accuracy"]
    for name in ("accuracy_vs_n", "accuracy_vs_tokens", "by_difficulty"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / f"{name}.svg").read_bytes()[:1000]
