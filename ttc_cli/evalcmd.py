"""``ttc eval``: run an evaluation on a server with a live progress bar, then write its
points, per-problem results, nodes and plots to a folder.

An arm is ``STRATEGY:KEY=V1,V2,...;KEY=VALUE``: the key given several values is the
arm's grid (``n=1,2,4,...,64`` doubles up to 64: ``...`` continues the progression the
values before it start), single values are the strategy's params (JSON values; keys
``budget.*`` set each job's budget). ``--grid`` gives arms that name no list a grid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ttc_cli.api_errors import check_server_url
from ttc_cli.render import write_progress
from ttc_cli.runjob import parse_prm, parse_verifier
from ttc_cli.usage import UsageError

#: What goes into ``--out``: exports by part and format, plots by name and format.
EXPORTS = (
    ("points", "csv"),
    ("points", "jsonl"),
    ("problems", "csv"),
    ("problems", "jsonl"),
    ("nodes", "jsonl"),
)
PLOTS = ("accuracy_vs_n", "accuracy_vs_tokens", "by_difficulty")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dataset",
        nargs="?",
        help="a JSONL or CSV file (uploaded first), or the id of an uploaded dataset",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("TTC_SERVER", "http://127.0.0.1:8000"),
        help="the ttc API's URL, without /v1 (default: $TTC_SERVER or http://127.0.0.1:8000)",
    )
    parser.add_argument("--api-key", default=os.environ.get("TTC_API_KEY"))
    parser.add_argument("--endpoint", default="sim")
    parser.add_argument(
        "--arm",
        action="append",
        default=[],
        metavar="SPEC",
        help="STRATEGY:KEY=V1,V2,...;KEY=VALUE, e.g. 'best_of_n:n=1,2,4,...,64' (repeat it)",
    )
    parser.add_argument(
        "--grid", default=None, metavar="KEY=V1,V2,...", help="the grid of arms that give none"
    )
    parser.add_argument(
        "--prm", default=None, help="step scorer of the arms that need one: prm:ENDPOINT | JSON"
    )
    parser.add_argument(
        "--verifier", default=None, help="math | exact | regex:PATTERN | reward_model:ENDPOINT"
    )
    parser.add_argument("--seeds", type=int, default=1, help="independent runs of each point")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--cache",
        choices=["use", "refresh", "off"],
        default=None,
        help="the expansion cache for the eval's jobs (default use: a rerun of the same "
        "seeds is served what was generated; refresh or off generate again)",
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="the whole eval's tokens")
    parser.add_argument("--max-cost", type=float, default=None, help="the whole eval's cost")
    parser.add_argument("--name", default="")
    parser.add_argument("--out", default=None, help="folder for CSV, JSONL, PNG and SVG")
    parser.add_argument("--attach", default=None, metavar="EVAL_ID", help="follow a running eval")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between progress reads")


def expand_values(text: str) -> list[int]:
    """``1,2,4,...,64`` -> 1, 2, 4, 8, 16, 32, 64 (the progression of the values before
    ``...``: geometric when they are, else arithmetic)."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    out: list[int] = []
    for i, item in enumerate(items):
        if item != "...":
            out.append(int(item))
            continue
        if len(out) < 2 or i + 1 >= len(items) or items[i + 1] == "...":
            raise ValueError("'...' needs two values before it and one after")
        a, b, end = out[-2], out[-1], int(items[i + 1])
        geometric = a > 0 and b % a == 0 and b // a > 1
        while True:
            b = b * (b // a) if geometric else b + (b - a)
            a = out[-1]
            if b >= end:
                break
            out.append(b)
    return out


def parse_arm(text: str) -> tuple[dict[str, Any], tuple[str, list[int]] | None]:
    """An arm and its grid (``None``: the eval's) from ``STRATEGY:KEY=V,...;KEY=VALUE``."""
    strategy, _, rest = text.partition(":")
    strategy = strategy.strip()
    if not strategy:
        raise UsageError(f"--arm {text!r}: start with the strategy, e.g. best_of_n:n=1,2,4")
    arm: dict[str, Any] = {"strategy": strategy, "params": {}}
    grid: tuple[str, list[int]] | None = None
    for item in filter(None, (part.strip() for part in rest.split(";"))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--arm {text!r}: {item!r} is not KEY=VALUE")
        if "," in value:
            if grid is not None:
                raise UsageError(f"--arm {text!r}: one key takes a list of values (the grid)")
            try:
                grid = (key, expand_values(value))
            except ValueError as exc:
                raise UsageError(f"--arm {text!r}: {key}: {exc}") from None
            continue
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        if key.startswith("budget."):
            arm.setdefault("budget", {})[key.removeprefix("budget.")] = parsed
        else:
            arm["params"][key] = parsed
    return arm, grid


def build_eval(ns: argparse.Namespace, dataset_id: str) -> dict[str, Any]:
    from ttc_core.search.strategies import STRATEGIES

    if not ns.arm:
        raise UsageError("give at least one --arm, e.g. --arm 'best_of_n:n=1,2,4,...,64'")
    body: dict[str, Any] = {"dataset": dataset_id, "endpoint": ns.endpoint, "arms": []}
    if ns.grid:
        arm, grid = parse_arm(f"_:{ns.grid}")
        if grid is None:
            raise UsageError(f"--grid {ns.grid}: give KEY=V1,V2,...")
        body["grid"] = {grid[0]: grid[1]}
    for text in ns.arm:
        arm, grid = parse_arm(text)
        strategy = STRATEGIES.get(arm["strategy"])
        if strategy is None:
            known = ", ".join(sorted(STRATEGIES))
            raise UsageError(f"--arm {text!r}: no strategy {arm['strategy']!r}; known: {known}")
        if grid is not None:
            arm["grid"] = {grid[0]: grid[1]}
        elif "grid" not in body:
            raise UsageError(f"--arm {text!r}: give it a list (n=1,2,4) or give --grid")
        if ns.prm and strategy.needs_step_scorer:
            arm["prm"] = parse_prm(ns.prm)
        if ns.verifier:
            arm["verifier"] = parse_verifier(ns.verifier)
        body["arms"].append(arm)
    body["seeds"] = ns.seeds
    if ns.seed is not None:
        body["seed"] = ns.seed
    budget = {"max_tokens": ns.max_tokens, "max_cost": ns.max_cost}
    body["budget"] = {k: v for k, v in budget.items() if v is not None}
    if ns.name:
        body["name"] = ns.name
    if ns.cache is not None:
        body["cache"] = ns.cache
    return body


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _count(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def progress_bar(ev: dict[str, Any], width: int = 28) -> str:
    """``[####----] 37/100 problems  120/300 jobs  1.2M tokens  $0.0123  ETA 0:42``."""
    p = ev["progress"]
    filled = min(width, round(width * p["fraction"]))
    bar = "#" * filled + "-" * (width - filled)
    tokens = p["prompt_tokens"] + p["completion_tokens"]
    return (
        f"\r[{bar}] {p['problems_done']}/{p['problems']} problems  {p['jobs_done']}/{p['jobs']} "
        f"jobs  {_count(tokens)} tokens  ${p['cost']:.4f}  ETA {_duration(p['eta_s'])}  "
        f"{ev['status']:<10}"
    )


def points_table(points: list[dict[str, Any]]) -> str:
    lines = [
        f"{'arm':<24} {'key':<8} {'value':>6} {'accuracy':>9} {'95% CI':>17} "
        f"{'pass@k':>7} {'tokens':>9}"
    ]
    for p in points:
        acc = "-" if p["accuracy"] is None else f"{p['accuracy']:.3f}"
        ci = "-" if not p["ci95"] else f"[{p['ci95'][0]:.3f}, {p['ci95'][1]:.3f}]"
        passk = "-" if p["pass_at_k"] is None else f"{p['pass_at_k']:.3f}"
        tokens = "-" if p["mean_tokens"] is None else f"{p['mean_tokens']:.0f}"
        lines.append(
            f"{p['arm'][:24]:<24} {p['key'][:8]:<8} {p['value']:>6} {acc:>9} {ci:>17} "
            f"{passk:>7} {tokens:>9}"
        )
    return "\n".join(lines)


def _dataset_id(client: Any, ref: str) -> str:
    path = Path(ref)
    if not path.exists():
        if path.suffix.lower() in (".jsonl", ".csv", ".json"):
            raise UsageError(f"{ref}: no such file")
        return ref  # the id of an uploaded dataset
    from ttc_core.evals.datasets import format_of

    text = path.read_text(encoding="utf-8")
    dataset = client.upload_dataset(text, fmt=format_of(ref), name=path.name)
    print(f"dataset {dataset['id']}: {dataset['rows']} rows from {ref}", file=sys.stderr)
    return str(dataset["id"])


def write_outputs(client: Any, eval_id: str, out: Path, final: dict[str, Any]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    (out / "eval.json").write_text(json.dumps(final, indent=2) + "\n", encoding="utf-8")
    written.append(out / "eval.json")
    for part, fmt in EXPORTS:
        path = out / f"{part}.{fmt}"
        path.write_text(client.eval_results(eval_id, fmt=fmt, part=part), encoding="utf-8")
        written.append(path)
    for name in PLOTS:
        for fmt in ("png", "svg"):
            path = out / f"{name}.{fmt}"
            path.write_bytes(client.eval_plot(eval_id, name, fmt))
            written.append(path)
    return written


def run_eval(ns: argparse.Namespace) -> int:
    import httpx

    try:
        return _run_eval(ns)
    except UsageError as exc:
        print(f"ttc eval: {exc}", file=sys.stderr)
        return 2
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        print(
            f"ttc eval: cannot reach the ttc API at {ns.server} ({reason}); is `ttc serve` "
            "running there? Set --server or TTC_SERVER.",
            file=sys.stderr,
        )
        return 2


def _run_eval(ns: argparse.Namespace) -> int:
    from ttc_api.client import APIError, TTCClient

    server = check_server_url(ns.server)
    with TTCClient(server, api_key=ns.api_key, timeout=120) as client:
        try:
            if ns.attach:
                eval_id = ns.attach
            else:
                if not ns.dataset:
                    raise UsageError("give a dataset (a JSONL or CSV file) or --attach EVAL_ID")
                body = build_eval(ns, _dataset_id(client, ns.dataset))
                accepted = client.submit_eval(body)
                eval_id = accepted["id"]
                print(f"eval {eval_id}: {accepted['jobs']} jobs", file=sys.stderr)
            ev = _follow(client, eval_id, ns.poll)
        except APIError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            write_progress("\n")
            print(
                f"ttc eval: stopped following; the eval goes on on the server. Follow it again "
                f"with `ttc eval --attach {eval_id} --out DIR`, or cancel it with "
                f"POST /v1/evals/{eval_id}/cancel.",
                file=sys.stderr,
            )
            return 130
        print(points_table(ev.get("points") or []))
        print(f"status: {ev['status']}  ended by: {ev['ended_by']}  eval: {eval_id}")
        if ns.out:
            written = write_outputs(client, eval_id, Path(ns.out), ev)
            print(f"wrote {len(written)} files to {ns.out}", file=sys.stderr)
    return 0 if ev["status"] == "succeeded" else 1


def _follow(client: Any, eval_id: str, poll: float) -> dict[str, Any]:
    while True:
        ev: dict[str, Any] = client.get_eval(eval_id, curves=False)
        write_progress(progress_bar(ev))
        if ev["status"] in ("succeeded", "failed", "cancelled"):
            write_progress("\n")
            final: dict[str, Any] = client.get_eval(eval_id)
            return final
        time.sleep(poll)
