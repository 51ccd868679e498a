"""``ttc run`` end to end, every strategy, against a real local stack: the integration
tests' own (the simulator, a Celery worker with two processes, the API, a fresh Postgres
database), which it shares rather than starting one more. Each job must succeed, its
summary must say whether the answer was correct, and its progress bar must end at 100%,
also for the searches that stop before their planned bound (beam search, DVTS, ToT,
MCTS, adaptive voting, auto).

The acceptance line of issue 15, ``ttc run --strategy mcts --prm prm``, runs as a child
process, exactly as typed; the others go through the same entry point in this process.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys

import pytest

from tests.integration.conftest import Stack
from ttc_cli.main import main
from ttc_core.search.strategies import STRATEGIES
from ttc_sim.tasks import gsm8k_problems

pytestmark = pytest.mark.integration

#: A GSM8K problem the simulated model solves in a few steps.
PROBLEM = 3
#: Small, so that the whole module stays within seconds; every strategy's defaults
#: otherwise (what `ttc run` sends is only what is asked for here).
EXTRA: dict[str, list[str]] = {
    "best_of_n": ["--n", "8"],
    "self_consistency": ["--n", "16", "--param", 'adaptive={"confidence": 0.9}'],
    "beam_search": ["--n", "8", "--param", "beam_width=2"],
    "dvts": ["--n", "8", "--param", "beam_width=2"],
    "mcts": ["--param", "simulations=12"],
    "tot_bfs": ["--param", "k=3", "--param", "breadth=2"],
    "tot_dfs": ["--param", "k=3", "--param", "max_expansions=12"],
    "refine": ["--param", "rounds=2"],
    "sample": ["--n", "2"],
}
#: The last redraw of the progress bar: ``[#####] 48/48 nodes``.
BAR = re.compile(r"\[([#-]+)\] (\d+)/(\d+) nodes")


def ttc(*args: str) -> list[str]:
    return [sys.executable, "-m", "ttc_cli.main", *args]


def run_args(stack: Stack, strategy: str) -> list[str]:
    args = ["run", "--server", stack.api_url, "--gsm8k", str(PROBLEM), "--strategy", strategy]
    if STRATEGIES[strategy].needs_step_scorer:
        args += ["--prm", "prm"]  # the simulator's PRM (sim-prm), batched JSON protocol
    return [*args, *EXTRA.get(strategy, []), "--seed", "7"]


@pytest.fixture(scope="module")
def runs(stack: Stack) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every strategy through ``ttc run``'s entry point (``ttc_cli.main.main``, in this
    process: eleven interpreters starting at once cost more than the searches)."""
    done = {}
    for name in sorted(STRATEGIES):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(run_args(stack, name))
        done[name] = subprocess.CompletedProcess(name, code, out.getvalue(), err.getvalue())
    return done


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_runs_from_the_cli(
    runs: dict[str, subprocess.CompletedProcess[str]], strategy: str
) -> None:
    done = runs[strategy]
    assert done.returncode == 0, f"{strategy}\n{done.stdout}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "status: succeeded", done.stdout
    answer = re.fullmatch(r"answer: (\S+)  score: \S+  correct: (True|False)", lines[1])
    assert answer, lines[1]
    # `correct` is the server's check of the chosen answer against the GSM8K reference.
    reference = gsm8k_problems()[PROBLEM].answer
    assert (answer.group(2) == "True") == (answer.group(1) == reference), lines[1]
    # The bar's last redraw is the finished job: complete, whatever its plan was.
    bars = BAR.findall(done.stderr)
    assert bars, done.stderr
    filled, nodes, total = bars[-1]
    assert nodes == total and int(nodes) > 0 and set(filled) == {"#"}, bars[-1]
    assert int(re.search(r"nodes: (\d+)", lines[2]).group(1)) == int(nodes)  # type: ignore[union-attr]


def test_a_beam_search_that_stops_early_ends_at_100_percent(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    """The planned total is the search's bound while it runs (n x max_depth here) and its
    node count once it has succeeded: a search that ends below its bound (the issue's
    320/640) still ends full."""
    bars = [(int(n), int(t)) for _, n, t in BAR.findall(runs["beam_search"].stderr)]
    nodes, total = bars[-1]
    assert nodes == total
    running = [t for n, t in bars if n < t]
    assert all(t == 8 * 8 for t in running), bars  # n=8, max_depth=8 (the default)
    assert total < 8 * 8  # it ended before its bound: beams finished at an answer


def test_mcts_with_a_prm_as_the_issue_runs_it(stack: Stack) -> None:
    """``ttc run --strategy mcts --prm prm`` with nothing else: the strategy's defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTC_")}
    args = ["run", "--server", stack.api_url, "--gsm8k", "1", "--strategy", "mcts"]
    done = subprocess.run(
        ttc(*args, "--prm", "prm"), capture_output=True, text=True, env=env, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("status: succeeded\n")
