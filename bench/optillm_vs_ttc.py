"""Best-of-16 through an OpenAI client, side by side: optillm's ``bon`` against ttc's
``best_of_n`` with a reward model, on the same simulated inference server, at 8
concurrent users. Not part of CI.

    optillm: one Flask process; ``bon`` asks for 16 samples (one request with n=16), then
             rates each with its own chat call (16 calls, one after another), keeps the
             best-rated sample.
    ttc:     API -> Postgres -> Celery (1 worker, 2 prefork processes) -> ttc_sim; 16
             samples (one request with n=16) scored by the simulated reward model in one
             batch call. The request goes through the OpenAI front door
             (``model="best_of_n@sim"``), so both sides are called the same way.

The simulator (its own process, shared by both) takes ``--base-latency-s`` plus
``--per-token-latency-s`` per generated token, with 64 slots. Each user sends its
requests one after another; the script prints p50 and p95 latency and throughput
(requests per second over the whole run) for each side, and the ratios.

optillm is installed in its own virtual environment (not a dependency of ttc)::

    python3 -m venv bench/.venv-optillm
    bench/.venv-optillm/bin/pip install torch==2.13.0 optillm==0.4.0

    .venv/bin/python bench/optillm_vs_ttc.py [--users 8] [--requests 4]

Needs Postgres and Redis (the same as the integration tests).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import redis

from ttc_cli.stack import free_port, fresh_postgres, run_stack
from ttc_sim.tasks import gsm8k_problems

ROOT = Path(__file__).resolve().parent
OPTILLM = ROOT / ".venv-optillm" / "bin" / "optillm"
N = 16
#: The generation settings optillm's bon uses for its samples (max_tokens 4096, T=1).
MAX_TOKENS = 4096
TEMPERATURE = 1.0


@dataclass
class Side:
    name: str
    latencies: list[float]
    wall_s: float
    errors: list[str]

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else 0.0

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def line(self) -> str:
        return (
            f"{self.name:8s} requests={len(self.latencies):3d} errors={len(self.errors)} "
            f"p50={self.p(0.5):6.2f}s p95={self.p(0.95):6.2f}s "
            f"throughput={self.throughput:5.2f} req/s (wall {self.wall_s:5.1f}s)"
        )


def run_users(
    name: str, users: int, per_user: int, ask: Callable[[openai.OpenAI, str], str], base_url: str
) -> Side:
    """``users`` threads, each with its own client, sending ``per_user`` requests."""
    problems = [p.question for p in gsm8k_problems(users * per_user)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def user(u: int) -> None:
        with openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=600) as sdk:
            for i in range(per_user):
                began = time.perf_counter()
                try:
                    answer = ask(sdk, problems[u * per_user + i])
                    assert answer, "empty answer"
                except Exception as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                with lock:
                    latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=user, args=(u,)) for u in range(users)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Side(name, latencies, time.perf_counter() - began, errors)


def ask_optillm(sdk: openai.OpenAI, question: str) -> str:
    done = sdk.chat.completions.create(
        model="bon-sim-gsm8k",  # optillm: the approach is the model name's prefix
        messages=[{"role": "user", "content": question}],
        extra_body={"n": N},
    )
    return done.choices[0].message.content or ""


def ask_ttc(sdk: openai.OpenAI, question: str) -> str:
    done = sdk.chat.completions.create(
        model="best_of_n@sim",
        messages=[{"role": "user", "content": question}],
        temperature=TEMPERATURE,
        max_tokens=MAX_TOKENS,
        extra_body={
            "ttc": {"params": {"n": N}, "verifier": {"kind": "reward_model", "endpoint": "sim-rm"}}
        },
    )
    return done.choices[0].message.content or ""


def start_optillm(sim_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    if not OPTILLM.exists():
        sys.exit(f"optillm is not installed at {OPTILLM} (see this script's docstring)")
    port = free_port()
    env = {**os.environ, "OPENAI_API_KEY": "sim", "OPTILLM_API_KEY": ""}
    args = [str(OPTILLM), "--base-url", f"{sim_url}/v1", "--port", str(port), "--n", str(N)]
    proc = subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # it imports torch and transformers first
    while True:
        if proc.poll() is not None:
            sys.exit(f"optillm exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code < 500:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            sys.exit(f"optillm did not start in time:\n{log.read_text()[-3000:]}")
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--requests", type=int, default=4, help="requests per user and side")
    parser.add_argument("--base-latency-s", default="0.05")
    parser.add_argument("--per-token-latency-s", default="0.002")
    parser.add_argument(
        "--redis", default=os.environ.get("TTC_TEST_REDIS", "redis://127.0.0.1:6379")
    )
    args = parser.parse_args()
    broker = f"{args.redis}/3"
    redis.Redis.from_url(broker).flushdb()
    sim_args = [
        "--base-latency-s",
        args.base_latency_s,
        "--per-token-latency-s",
        args.per_token_latency_s,
        "--slots",
        "64",
    ]
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres() as pg_url:
        logs = Path(tmp)
        with run_stack(
            database_url=pg_url, broker_url=broker, log_dir=logs, sim_args=sim_args
        ) as stack:
            proc, optillm_url = start_optillm(stack.sim_url, logs / "optillm.log")
            try:
                # One warm-up request each (imports, connection pools, first plans).
                run_users("warm-up", 1, 1, ask_optillm, optillm_url + "/v1")
                run_users("warm-up", 1, 1, ask_ttc, stack.api_url + "/v1")
                optillm_side = run_users(
                    "optillm", args.users, args.requests, ask_optillm, optillm_url + "/v1"
                )
                ttc_side = run_users(
                    "ttc", args.users, args.requests, ask_ttc, stack.api_url + "/v1"
                )
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    print(
        f"best-of-{N}, {args.users} users x {args.requests} requests each; sim "
        f"{args.base_latency_s}s + {args.per_token_latency_s}s/token, 64 slots"
    )
    for side in (optillm_side, ttc_side):
        print(side.line())
        for err in side.errors[:3]:
            print("   ", err[:300])
    print(
        f"ttc vs optillm: p50 latency {optillm_side.p(0.5) / ttc_side.p(0.5):.1f}x lower, "
        f"throughput {ttc_side.throughput / optillm_side.throughput:.1f}x higher"
    )


if __name__ == "__main__":
    main()
