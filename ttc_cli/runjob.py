"""``ttc run``: submit a job to a server, show a live progress bar (or, with ``--follow``,
its events as they happen, over Server-Sent Events), print the answer.

It sends only the params the strategy takes, read from the strategy's own parameter model
(``ttc_cli.strategy_params``): ``--n`` where the strategy has an ``n``, and any of its
params with ``--param KEY=VALUE``; the strategy's defaults fill in the rest on the server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ttc_api.schemas import EventPublic, JobPublic
from ttc_cli.api_errors import api_errors, check_server_url
from ttc_cli.render import progress_line, write_progress
from ttc_cli.strategy_params import check_params, parse_param, strategies_table
from ttc_cli.usage import UsageError


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from ttc_core.search.strategies import STRATEGIES

    parser.add_argument(
        "--server",
        default=os.environ.get("TTC_SERVER", "http://127.0.0.1:8000"),
        help="the ttc API's URL, without /v1 (default: $TTC_SERVER or http://127.0.0.1:8000)",
    )
    parser.add_argument("--api-key", default=os.environ.get("TTC_API_KEY"))
    parser.add_argument(
        "--strategy",
        default="best_of_n",
        choices=sorted(STRATEGIES),
        metavar="STRATEGY",
        help=f"one of {', '.join(sorted(STRATEGIES))} (`ttc strategies` lists their params)",
    )
    parser.add_argument("--endpoint", default="sim")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt")
    source.add_argument("--prompt-file")
    source.add_argument("--gsm8k", type=int, metavar="INDEX", help="a bundled GSM8K problem")
    parser.add_argument(
        "--n",
        type=int,
        default=None,
        help="n, for the strategies that take it (default: the strategy's own)",
    )
    parser.add_argument("--reference")
    parser.add_argument(
        "--verifier",
        default="math",
        help="math | exact | regex:PATTERN | reward_model:ENDPOINT",
    )
    parser.add_argument(
        "--prm",
        default=None,
        help="step scorer for the step-level strategies: prm (the simulator's sim-prm), "
        "prm:ENDPOINT, llm_judge:ENDPOINT or a JSON object",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any param of the strategy (repeatable), typed as below: --param beam_width=2",
    )
    parser.add_argument("--max-tokens-budget", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--cache",
        choices=["use", "refresh", "off"],
        default=None,
        help="the expansion cache (default: use with --seed, else off)",
    )
    parser.add_argument("--json", action="store_true", help="print the final job as JSON")
    parser.add_argument(
        "--follow", action="store_true", help="print the job's events live (SSE) instead of a bar"
    )
    parser.add_argument(
        "--idempotency-key", default=None, help="resubmitting with the same key returns the job"
    )


def parse_verifier(text: str) -> dict[str, Any]:
    kind, _, arg = text.partition(":")
    if kind == "regex":
        return {"kind": "regex", "pattern": arg}
    if kind == "reward_model":
        return {"kind": "reward_model", "endpoint": arg or "sim-rm"}
    return {"kind": kind}


def parse_prm(text: str) -> dict[str, Any]:
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--prm {text}: not a JSON object ({exc})") from None
        if not isinstance(value, dict):
            raise UsageError(f"--prm {text}: give a JSON object")
        return value
    kind, _, endpoint = text.partition(":")
    spec: dict[str, Any] = {"kind": kind, "endpoint": endpoint or "sim-prm"}
    if kind == "prm" and not endpoint:
        spec["protocol"] = "json"
    return spec


def run_epilog() -> str:
    """``ttc run --help``'s list of strategies and their params (``ttc strategies``)."""
    return "strategies and their params (--param KEY=VALUE):\n" + strategies_table()


def build_spec(ns: argparse.Namespace) -> dict[str, Any]:
    """The job body for ``ttc run``; only the params the strategy takes are sent."""
    reference = ns.reference
    if ns.gsm8k is not None:
        from ttc_sim.tasks import gsm8k_problems

        problems = gsm8k_problems()
        if not 0 <= ns.gsm8k < len(problems):
            raise UsageError(
                f"--gsm8k {ns.gsm8k}: there are {len(problems)} bundled GSM8K problems; "
                f"give an index from 0 to {len(problems) - 1}"
            )
        problem = problems[ns.gsm8k]
        prompt = problem.question
        reference = reference or problem.answer
    elif ns.prompt_file:
        try:
            with open(ns.prompt_file, encoding="utf-8") as fh:
                prompt = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--prompt-file {ns.prompt_file}: {exc}") from None
    else:
        prompt = ns.prompt
    params: dict[str, Any] = {}
    if ns.n is not None:
        params.update([parse_param(ns.strategy, f"n={ns.n}", flag="--n")])
    params.update(parse_param(ns.strategy, item) for item in ns.param)
    check_params(ns.strategy, params)
    spec: dict[str, Any] = {
        "strategy": ns.strategy,
        "endpoint": ns.endpoint,
        "prompt": prompt,
        "params": params,
        "verifier": parse_verifier(ns.verifier),
    }
    if reference is not None:
        spec["reference"] = reference
    if ns.prm:
        spec["prm"] = parse_prm(ns.prm)
    if ns.max_tokens_budget:
        spec["budget"] = {"max_tokens": ns.max_tokens_budget}
    if ns.seed is not None:
        spec["seed"] = ns.seed
    if ns.cache is not None:
        spec["cache"] = ns.cache
    return spec


def event_line(event: EventPublic) -> str:
    """One line per event: ``#seq kind key=value ...`` (long values cut)."""
    fields = " ".join(
        f"{key}={str(value)[:40]}" for key, value in event.data.items() if value is not None
    )
    return f"#{event.id:<4} {event.kind:<22} {fields}".rstrip()


def run_job(ns: argparse.Namespace) -> int:
    with api_errors("ttc run", ns.server) as outcome:
        return _run_job(ns)
    assert outcome.status is not None  # api_errors only lets the block end by an error
    return outcome.status


def _run_job(ns: argparse.Namespace) -> int:
    from ttc_api.client import TTCClient

    server = check_server_url(ns.server)
    spec = build_spec(ns)
    with TTCClient(server, api_key=ns.api_key) as client:
        accepted = client.submit_job(spec, idempotency_key=ns.idempotency_key)
        print(f"job {accepted.id} accepted", file=sys.stderr)
        if ns.follow:
            for event in client.iter_events(accepted.id):
                print(event_line(event), file=sys.stderr, flush=True)
            job = client.get_job(accepted.id)
        else:
            job = client.wait(
                accepted.id,
                on_progress=lambda j: write_progress(
                    progress_line(
                        j.status,
                        j.progress.nodes,
                        j.progress.planned_samples,
                        j.usage.completion_tokens,
                    )
                ),
            )
            write_progress("\n")
    print(job.model_dump_json(indent=2) if ns.json else summary(job))
    return 0 if job.status == "succeeded" else 1


def summary(job: JobPublic) -> str:
    """The finished job in a few lines: ``correct`` says whether the chosen answer matched
    the reference (``-`` when there was nothing to check it against)."""
    if job.result is None:
        return f"status: {job.status}  error: {job.error}"
    result = job.result
    correct = "-" if result.correct is None else str(result.correct)
    lines = [
        f"status: {job.status}" + (f"  error: {job.error}" if job.error else ""),
        f"answer: {result.answer}  score: {result.score}  correct: {correct}",
        f"tokens: {job.usage.total_tokens}  requests: {job.usage.requests}  "
        f"nodes: {job.progress.nodes}  ended by: {result.ended_by or 'strategy'}",
    ]
    cache = job.usage.cache
    if cache.hits:
        lines.append(
            f"from the cache: {cache.hits} samples, "
            f"{cache.prompt_tokens_saved + cache.completion_tokens_saved} tokens, "
            f"{cache.requests_saved} requests saved"
        )
    return "\n".join(lines)
