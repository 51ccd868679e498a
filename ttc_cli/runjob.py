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


class UsageError(Exception):
    """A mistake on the command line: printed as one line that names the fix."""


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    from ttc_core.strategies import STRATEGIES

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
        "--n", type=int, default=None, help="samples (strategies that take n; default 16)"
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
        help="step scorer: prm:ENDPOINT | llm_judge:ENDPOINT | a JSON object",
    )
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
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
        value: dict[str, Any] = json.loads(text)
        return value
    kind, _, endpoint = text.partition(":")
    spec: dict[str, Any] = {"kind": kind, "endpoint": endpoint or "sim-prm"}
    if kind == "prm" and not endpoint:
        spec["protocol"] = "json"
    return spec


def _strategy_fields(name: str) -> set[str]:
    from ttc_core.strategies import get_strategy

    return set(get_strategy(name).params_model.model_fields)


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
        with open(ns.prompt_file, encoding="utf-8") as fh:
            prompt = fh.read()
    else:
        prompt = ns.prompt
    takes = _strategy_fields(ns.strategy)
    params: dict[str, Any] = {}
    if "n" in takes:
        params["n"] = 16 if ns.n is None else ns.n
    elif ns.n is not None:
        raise UsageError(
            f"--n: {ns.strategy} takes no n; its params are {', '.join(sorted(takes))} "
            "(set them with --param KEY=VALUE)"
        )
    for item in ns.param:
        key, _, value = item.partition("=")
        if key not in takes:
            raise UsageError(
                f"--param {key}: {ns.strategy} takes no {key!r}; its params are "
                f"{', '.join(sorted(takes))}"
            )
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
    if ns.cache is not None:
        spec["cache"] = ns.cache
    return spec


def event_line(event: EventPublic) -> str:
    """One line per event: ``#seq kind key=value ...`` (long values cut)."""
    fields = " ".join(
        f"{key}={str(value)[:40]}" for key, value in event.data.items() if value is not None
    )
    return f"#{event.id:<4} {event.kind:<22} {fields}".rstrip()


def check_server_url(url: str) -> str:
    """The API's base URL as the client wants it (it adds ``/v1/...`` itself)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"--server {url}: give the API's URL, e.g. http://127.0.0.1:8000")
    if parts.path.rstrip("/").endswith("/v1"):
        fixed = url.rstrip("/").removesuffix("/v1")
        raise UsageError(f"--server {url}: drop the trailing /v1 (use {fixed})")
    return url


def run_job(ns: argparse.Namespace) -> int:
    import httpx

    try:
        return _run_job(ns)
    except UsageError as exc:
        print(f"ttc run: {exc}", file=sys.stderr)
        return 2
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        print(
            f"ttc run: cannot reach the ttc API at {ns.server} ({reason}); is `ttc serve` "
            "running there? Set --server or TTC_SERVER.",
            file=sys.stderr,
        )
        return 2


def _run_job(ns: argparse.Namespace) -> int:
    from ttc_api.client import APIError, TTCClient

    server = check_server_url(ns.server)
    spec = build_spec(ns)
    with TTCClient(server, api_key=ns.api_key) as client:
        try:
            accepted = client.submit_job(spec, idempotency_key=ns.idempotency_key)
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
        print(
            f"answer: {job.result.answer}  score: {job.result.score}  correct: {job.result.correct}"
        )
        print(f"tokens: {job.usage.total_tokens}  requests: {job.usage.requests}")
        if job.usage.cache.hits:
            cache = job.usage.cache
            print(
                f"from the cache: {cache.hits} samples, "
                f"{cache.prompt_tokens_saved + cache.completion_tokens_saved} tokens, "
                f"{cache.requests_saved} requests saved"
            )
    else:
        print(f"status: {job.status}  error: {job.error}")
    return 0 if job.status == "succeeded" else 1


def strategies_table() -> str:
    """``ttc strategies``: each strategy with its params and their defaults."""
    from pydantic_core import PydanticUndefined

    from ttc_core.strategies import STRATEGIES

    lines = []
    for name in sorted(STRATEGIES):
        strategy = STRATEGIES[name]
        doc = (type(strategy).__doc__ or "").strip().splitlines()
        lines.append(f"{name}: {doc[0] if doc else ''}".rstrip(": "))
        for field, info in strategy.params_model.model_fields.items():
            default = info.get_default(call_default_factory=True)
            shown = "required" if default is PydanticUndefined else f"default {default!r}"
            about = f"  {info.description}" if info.description else ""
            lines.append(f"  {field:<22} {shown}{about}")
    return "\n".join(lines)
