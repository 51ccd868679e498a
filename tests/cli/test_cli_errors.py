"""The CLI's errors are one line that names the fix, never a traceback: settings typos
(refused at start-up with the nearest valid name), an index out of range, a server URL
ending in /v1, a server that is not there, params a strategy does not take."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

import pytest

from ttc_cli.main import main
from ttc_core.settings_errors import SettingsError, load_settings, unknown_variables
from ttc_sim.tasks import gsm8k_problems


def _ttc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TTC_")}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "ttc_cli.main", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=60,
    )


def _endpoints(**local: Any) -> str:
    return json.dumps({"local": {"base_url": "http://127.0.0.1:9/v1", "model": "m", **local}})


def test_serve_refuses_a_misspelled_endpoint_key() -> None:
    done = _ttc("serve", "--no-auth", env={"TTC_ENDPOINTS": _endpoints(max_concurency=8)})
    assert done.returncode != 0
    assert done.stderr.strip() == (
        "ttc: endpoints.local.max_concurency: unknown; did you mean max_concurrency?"
    )


def test_serve_names_a_misspelled_required_key_without_a_traceback() -> None:
    endpoints = json.dumps({"local": {"base_url": "http://127.0.0.1:9/v1", "modle": "m"}})
    done = _ttc("serve", "--no-auth", env={"TTC_ENDPOINTS": endpoints})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "ttc: endpoints.local.model: required" in lines
    assert "ttc: endpoints.local.modle: unknown; did you mean model?" in lines
    assert "Traceback" not in done.stderr


def test_worker_refuses_an_unknown_setting_variable() -> None:
    done = _ttc("worker", env={"TTC_MAX_DEPHT": "4"})
    assert done.returncode == 2
    assert done.stderr.strip() == "ttc: TTC_MAX_DEPHT: unknown setting; did you mean TTC_MAX_DEPTH?"


def test_client_and_tooling_variables_are_not_settings_typos() -> None:
    env = {"TTC_SERVER": "x", "TTC_API_KEY": "k", "TTC_TEST_REDIS": "r", "TTC_MAX_N": "3"}
    assert unknown_variables(env) == []
    assert unknown_variables({"TTC_NOPE": "1"}) == ["TTC_NOPE: unknown setting"]


def test_bad_values_name_their_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("TTC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TTC_ENDPOINTS", _endpoints(max_concurrency=0))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.lines == [
        "endpoints.local.max_concurrency: Input should be greater than or equal to 1"
    ]
    monkeypatch.setenv("TTC_ENDPOINTS", "{not json")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.lines[0].startswith("endpoints: ")


def test_every_ttc_variable_the_code_reads_is_a_setting_or_declared() -> None:
    """A ``TTC_*`` name used anywhere in the code must be a setting (or a declared client
    or tooling variable), or start-up would refuse it as a typo."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    names: set[str] = set()
    for folder in ("ttc_core", "ttc_api", "ttc_worker", "ttc_cli", "ttc_sim"):
        for path in (root / folder).rglob("*.py"):
            if path.name == "settings_errors.py":  # its docstring shows a typo
                continue
            names |= set(re.findall(r"\bTTC_[A-Z][A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert unknown_variables(dict.fromkeys(names, "")) == []


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["run", *args])
    return code, capsys.readouterr().err.strip()


def test_gsm8k_index_out_of_range_says_how_many(capsys: pytest.CaptureFixture[str]) -> None:
    count = len(gsm8k_problems())
    code, err = _run(capsys, "--gsm8k", "99999")
    assert code == 2
    assert err == (
        f"ttc run: --gsm8k 99999: there are {count} bundled GSM8K problems; "
        f"give an index from 0 to {count - 1}"
    )


def test_server_url_ending_in_v1_says_to_drop_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--gsm8k", "0", "--server", "http://127.0.0.1:8000/v1")
    assert code == 2
    assert err == (
        "ttc run: --server http://127.0.0.1:8000/v1: drop the trailing /v1 "
        "(use http://127.0.0.1:8000)"
    )


def test_a_server_that_is_not_there_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, err = _run(capsys, "--gsm8k", "0", "--server", f"http://127.0.0.1:{port}")
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith(f"ttc run: cannot reach the ttc API at http://127.0.0.1:{port}")
    assert "is `ttc serve` running there?" in err


def test_run_sends_only_the_params_a_strategy_takes() -> None:
    from ttc_cli.main import build_parser
    from ttc_cli.runjob import build_spec
    from ttc_core.strategies import get_strategy

    parser = build_parser()
    for strategy in ("mcts", "tot_bfs", "tot_dfs", "think", "auto"):
        ns = parser.parse_args(["run", "--strategy", strategy, "--prompt", "2+2?"])
        spec = build_spec(ns)
        # What the CLI sends is what the strategy accepts (the server validates the same).
        get_strategy(strategy).parse_params(spec["params"])
    ns = parser.parse_args(["run", "--prompt", "2+2?"])
    assert build_spec(ns)["params"] == {"n": 16}
    ns = parser.parse_args(["run", "--strategy", "mcts", "--prompt", "x", "--param", "k=2"])
    assert build_spec(ns)["params"] == {"k": 2}


def test_run_refuses_params_a_strategy_does_not_take(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--strategy", "mcts", "--prompt", "x", "--n", "8")
    assert code == 2
    assert err.startswith("ttc run: --n: mcts takes no n; its params are ")
    assert "simulations" in err
    code, err = _run(capsys, "--strategy", "best_of_n", "--prompt", "x", "--param", "k=2")
    assert code == 2
    assert err.startswith("ttc run: --param k: best_of_n takes no 'k'")


def test_strategies_lists_params_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    for name in ("best_of_n", "beam_search", "mcts", "tot_bfs", "think", "auto"):
        assert any(line.startswith(name) for line in out.splitlines()), name
    assert any(line.split()[:3] == ["simulations", "default", "32"] for line in out.splitlines())
