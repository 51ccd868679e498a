"""The CLI's errors are one line that names the fix, never a traceback: settings typos
(refused at start-up with the nearest valid name), an index out of range, a server URL
ending in /v1, a server that is not there, params a strategy does not take."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
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
            quoted = re.findall(r"[\"']\b(TTC_[A-Z][A-Z0-9_]*[A-Z0-9])\b[\"']", path.read_text())
            names |= set(quoted)
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
    assert "is `ttc serve` running there? Check --server (or TTC_SERVER)." in err


def test_run_sends_only_the_params_a_strategy_takes() -> None:
    from ttc_cli.main import build_parser
    from ttc_cli.runjob import build_spec
    from ttc_core.search.strategies import STRATEGIES

    parser = build_parser()
    for strategy in sorted(STRATEGIES):
        ns = parser.parse_args(["run", "--strategy", strategy, "--prompt", "2+2?"])
        # Nothing but what is asked for: the strategy's own defaults apply on the server.
        assert build_spec(ns)["params"] == {}, strategy
    ns = parser.parse_args(["run", "--prompt", "2+2?", "--n", "8"])
    assert build_spec(ns)["params"] == {"n": 8}
    ns = parser.parse_args(["run", "--strategy", "mcts", "--prompt", "x", "--param", "k=2"])
    assert build_spec(ns)["params"] == {"k": 2}


def test_params_are_typed_by_the_strategys_model() -> None:
    from ttc_cli.main import build_parser
    from ttc_cli.runjob import build_spec

    args = [
        *("run", "--strategy", "self_consistency", "--prompt", "x", "--n", "32"),
        *("--param", "weighted=true", "--param", "temperature=0.5"),
        *("--param", 'adaptive={"confidence": 0.9}', "--param", 'stop=["ANSWER"]'),
    ]
    params = build_spec(build_parser().parse_args(args))["params"]
    assert params["n"] == 32 and params["weighted"] is True and params["temperature"] == 0.5
    assert params["adaptive"]["confidence"] == 0.9  # an object, as JSON, checked by its model
    assert params["stop"] == ["ANSWER"]
    args = ["run", "--strategy", "tot_dfs", "--prompt", "x", "--param", "delimiter=2"]
    assert build_spec(build_parser().parse_args(args))["params"] == {"delimiter": "2"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--strategy", "mcts", "--param", "k=two"],
            "ttc run: --param k=two: mcts's k takes int (Input should be a valid integer, "
            "unable to parse string as an integer)",
        ),
        (
            ["--strategy", "mcts", "--param", "c=-1"],
            "ttc run: --param c=-1: mcts's c takes float "
            "(Input should be greater than or equal to 0)",
        ),
        (
            ["--strategy", "tot_dfs", "--param", "select=worst"],
            "ttc run: --param select=worst: tot_dfs's select takes "
            "best|majority|weighted_majority "
            "(Input should be 'best', 'majority' or 'weighted_majority')",
        ),
        (
            ["--strategy", "self_consistency", "--param", 'adaptive={"confidence": 9}'],
            'ttc run: --param adaptive={"confidence": 9}: self_consistency\'s '
            "adaptive.confidence: Input should be less than or equal to 0.9999",
        ),
        (
            ["--strategy", "beam_search", "--param", "beam_width=3"],
            "ttc run: beam_search params (beam_width=3): "
            "n (16) must be a multiple of beam_width (3)",
        ),
        (["--param", "n"], "ttc run: --param n: give KEY=VALUE, e.g. --param n=8"),
        (
            ["--strategy", "mcts", "--prm", "{bad"],
            "ttc run: --prm {bad: not a JSON object (Expecting property name enclosed in "
            "double quotes: line 1 column 2 (char 1))",
        ),
        (
            ["--n", "0"],
            "ttc run: --n=0: best_of_n's n takes int (Input should be greater than or equal to 1)",
        ),
    ],
)
def test_a_bad_param_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code, err = _run(capsys, "--prompt", "x", *args)
    assert code == 2
    assert err == expected


def test_a_prompt_file_that_cannot_be_read_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.txt"
    code, err = _run(capsys, "--prompt-file", str(missing))
    assert code == 2
    assert (
        err == f"ttc run: --prompt-file {missing}: [Errno 2] No such file or directory: '{missing}'"
    )


def test_run_refuses_params_a_strategy_does_not_take(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "--strategy", "mcts", "--prompt", "x", "--n", "8")
    assert code == 2
    assert err.startswith("ttc run: --n: mcts takes no 'n'; its params are ")
    assert "simulations" in err
    code, err = _run(capsys, "--strategy", "best_of_n", "--prompt", "x", "--param", "k=2")
    assert code == 2
    assert err.startswith("ttc run: --param k: best_of_n takes no 'k'")


def test_strategies_lists_params_types_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    from ttc_core.search.strategies import STRATEGIES, get_strategy

    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in STRATEGIES:
        assert any(line.startswith(f"{name}: ") for line in lines), name
    # Read from the models: change a default there and this line changes with it.
    simulations = get_strategy("mcts").params_model.model_fields["simulations"].default
    assert any(line.split()[:3] == ["simulations", "int", str(simulations)] for line in lines)
    assert any(
        line.split()[:3] == ["select", "best|majority|weighted_majority", "'best'"]
        for line in lines
    )
    assert any(line.split()[:4] == ["adaptive", "JSON", "object", "or"] for line in lines)


def test_run_help_lists_the_strategies_with_their_params() -> None:
    from ttc_cli.strategy_params import strategies_table

    done = _ttc("run", "--help")
    assert done.returncode == 0
    assert strategies_table() in done.stdout
    assert "--param KEY=VALUE" in done.stdout


def test_a_server_that_is_not_a_ttc_api_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong port that another HTTP server answers on (here the simulator, whose
    404s are not problem+json) or a path under the API's address."""
    from ttc_sim.config import SimConfig
    from ttc_sim.runner import SimServer

    with SimServer(SimConfig()) as sim:
        code, err = _run(capsys, "--gsm8k", "0", "--server", sim.url)
    assert code == 2
    assert len(err.splitlines()) == 1
    assert err.startswith(f"ttc run: the server at {sim.url} is not a ttc API (HTTP 404")
    assert "check --server (or TTC_SERVER)" in err


def test_a_database_that_is_not_there_is_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = _ttc("tree", "--database-url", f"postgresql://postgres@127.0.0.1:{port}/x")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("ttc: cannot open the database (connection failed")
    assert "Check --database-url (or TTC_DATABASE_URL)." in done.stderr
