"""``ttc eval``'s arm syntax and progress line."""

from __future__ import annotations

import argparse

import pytest

from ttc_cli.evalcmd import add_eval_arguments, build_eval, expand_values, parse_arm, progress_bar
from ttc_cli.usage import UsageError


def test_values_with_an_ellipsis_continue_the_progression() -> None:
    assert expand_values("1,2,4,...,64") == [1, 2, 4, 8, 16, 32, 64]
    assert expand_values("4,16,64") == [4, 16, 64]
    assert expand_values("2,3,...,6") == [2, 3, 4, 5, 6]
    with pytest.raises(ValueError):
        expand_values("1,...,8")


def test_an_arm_has_a_grid_params_and_budget() -> None:
    arm, grid = parse_arm("beam_search:n=4,16,64;beam_width=4;budget.max_tokens=5000")
    assert arm == {
        "strategy": "beam_search",
        "params": {"beam_width": 4},
        "budget": {"max_tokens": 5000},
    }
    assert grid == ("n", [4, 16, 64])
    with pytest.raises(UsageError):
        parse_arm("best_of_n:n=1,2;temperature=0.1,0.2")


def _ns(**kw: object) -> argparse.Namespace:
    base = {
        "endpoint": "sim",
        "arm": [],
        "grid": None,
        "prm": None,
        "verifier": None,
        "seeds": 1,
        "seed": None,
        "max_tokens": None,
        "max_cost": None,
        "name": "",
        "cache": None,
    }
    return argparse.Namespace(**{**base, **kw})


def test_the_prm_goes_to_the_arms_that_need_a_step_scorer() -> None:
    body = build_eval(
        _ns(
            arm=["best_of_n:n=1,2,4,...,64", "beam_search:n=4,16,64;beam_width=4"],
            prm="prm:sim-prm",
        ),
        "ds",
    )
    assert "prm" not in body["arms"][0]
    assert body["arms"][1]["prm"]["endpoint"] == "sim-prm"
    assert body["arms"][0]["grid"] == {"n": [1, 2, 4, 8, 16, 32, 64]}
    with pytest.raises(UsageError, match="no strategy"):
        build_eval(_ns(arm=["best_of_m:n=1,2"]), "ds")
    with pytest.raises(UsageError, match="--grid"):
        build_eval(_ns(arm=["best_of_n"]), "ds")


def test_the_cache_option_reaches_the_eval_only_when_given() -> None:
    arms = ["best_of_n:n=1,2,4"]
    assert "cache" not in build_eval(_ns(arm=arms), "ds")
    assert build_eval(_ns(arm=arms, cache="off"), "ds")["cache"] == "off"
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    with pytest.raises(SystemExit):  # argparse refuses what the API would refuse
        parser.parse_args(["ds.jsonl", "--endpoint", "sim", "--cache", "sometimes"])


def test_progress_bar_shows_problems_tokens_cost_and_eta() -> None:
    line = progress_bar(
        {
            "status": "running",
            "progress": {
                "fraction": 0.5,
                "problems_done": 3,
                "problems": 10,
                "jobs_done": 15,
                "jobs": 30,
                "prompt_tokens": 1000,
                "completion_tokens": 1_500_000,
                "cost": 0.25,
                "eta_s": 75,
            },
        }
    )
    assert "3/10 problems" in line and "15/30 jobs" in line and "1.5M tokens" in line
    assert "$0.2500" in line and "ETA 1:15" in line and "#" * 14 + "-" * 14 in line
