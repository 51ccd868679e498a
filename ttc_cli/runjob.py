"""``ttc run``: submit a job to a server, show a live progress bar (or, with ``--follow``,
its events as they happen, over Server-Sent Events), print the answer."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ttc_api.schemas import EventPublic
from ttc_cli.render import progress_line, write_progress


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=os.environ.get("TTC_SERVER", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("TTC_API_KEY"))
    parser.add_argument("--strategy", default="best_of_n")
    parser.add_argument("--endpoint", default="sim")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt")
    source.add_argument("--prompt-file")
    source.add_argument("--gsm8k", type=int, metavar="INDEX", help="a bundled GSM8K problem")
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--reference")
    parser.add_argument(
        "--verifier",
        default="math",
        help="math | exact | regex:PATTERN | reward_model:ENDPOINT",
    )
    parser.add_argument(
        "--prm",
        default=None,
        help="step scorer: prm:ENDPOINT | llm_judge:ENDPOINT | a JSON object",
    )
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--max-tokens-budget", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
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
        value: dict[str, Any] = json.loads(text)
        return value
    kind, _, endpoint = text.partition(":")
    spec: dict[str, Any] = {"kind": kind, "endpoint": endpoint or "sim-prm"}
    if kind == "prm" and not endpoint:
        spec["protocol"] = "json"
    return spec


def build_spec(ns: argparse.Namespace) -> dict[str, Any]:
    reference = ns.reference
    if ns.gsm8k is not None:
        from ttc_sim.tasks import gsm8k_problems

        problem = gsm8k_problems()[ns.gsm8k]
        prompt = problem.question
        reference = reference or problem.answer
    elif ns.prompt_file:
        with open(ns.prompt_file, encoding="utf-8") as fh:
            prompt = fh.read()
    else:
        prompt = ns.prompt
    params: dict[str, Any] = {"n": ns.n}
    for item in ns.param:
        key, _, value = item.partition("=")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
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
    return spec


def event_line(event: EventPublic) -> str:
    """One line per event: ``#seq kind key=value ...`` (long values cut)."""
    fields = " ".join(
        f"{key}={str(value)[:40]}" for key, value in event.data.items() if value is not None
    )
    return f"#{event.id:<4} {event.kind:<22} {fields}".rstrip()


def run_job(ns: argparse.Namespace) -> int:
    from ttc_api.client import APIError, TTCClient

    with TTCClient(ns.server, api_key=ns.api_key) as client:
        try:
            accepted = client.submit_job(build_spec(ns), idempotency_key=ns.idempotency_key)
        except APIError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 2
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
    if ns.json:
        print(job.model_dump_json(indent=2))
    elif job.result is not None:
        print(f"status: {job.status}")
        print(f"answer: {job.result.answer}  score: {job.result.score}")
        print(f"tokens: {job.usage.total_tokens}  requests: {job.usage.requests}")
    else:
        print(f"status: {job.status}  error: {job.error}")
    return 0 if job.status == "succeeded" else 1
