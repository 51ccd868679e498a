"""MCTS cost per simulation as the tree grows, through the real stack: API → Postgres →
Celery (2 worker processes, ``bench/workers.py``) → ttc_sim and its PRM.

MCTS plans ``parallel`` simulations per driver step, so a job of S simulations runs about
S / parallel steps over a tree of k·S nodes. When a step costs what the whole tree costs
(loading it, rescanning it for visit counts), a job is quadratic and the cost per
simulation grows with S; when it costs what changed, it stays flat.

Default mode: MCTS jobs (k=4, parallel=8) of 256 and of 4,096 simulations on one stack, in
the order 256, 4096, 256 (the second 256 shows the machine's drift during the run);
prints wall time per simulation of each (job created → finished, as the server recorded
them) and the ratio 4096 / 256 (target <= 1.2).

``--big``: one job of ``--big-simulations`` (25,000: about 100,000 nodes); the worker
processes' peak RSS is sampled every second (target <= 1 GB), then the time to open its
tree as the UI does (the tree page with the root and its first children, the children of
every node on the best path, the best node's detail; target < 2 s), and the events the
page reads behind it.

The simulator answers every request in 5 ms plus 0.1 ms per token (64 tokens a step),
its PRM in 2 ms: a fast GPU server, so that what ttc itself spends per step shows. The
problems have 8 steps and the search may go 12 deep, so a tree of 100,000 nodes has
open leaves to the end.

    .venv/bin/python bench/mcts_scaling.py [--pool prefork|threads]
    .venv/bin/python bench/mcts_scaling.py --big [--big-simulations 25000]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis
from workers import add_pool_arguments, stack_workers

from ttc_cli.stack import Stack, fresh_postgres, run_stack
from ttc_sim.tasks import synthetic_problems

SIM_ARGS = [
    "--base-latency-s",
    "0.005",
    "--per-token-latency-s",
    "0.0001",
    "--reward-latency-s",
    "0.002",
    "--slots",
    "256",
]
K, PARALLEL, MAX_DEPTH, STEPS = 4, 8, 12, 8


def submit(api: httpx.Client, simulations: int, seed: int) -> str:
    problem = synthetic_problems(1, seed=seed, steps=STEPS)[0]
    resp = api.post(
        "/v1/jobs",
        json={
            "strategy": "mcts",
            "endpoint": "sim",
            "prompt": problem.question,
            "params": {
                "simulations": simulations,
                "k": K,
                "parallel": PARALLEL,
                "max_depth": MAX_DEPTH,
                "max_tokens": 64,
            },
            "prm": {"kind": "prm", "endpoint": "sim-prm", "protocol": "json", "aggregation": "min"},
            "reference": problem.answer,
            "seed": seed,
            "cache": "off",
        },
    )
    if resp.status_code >= 400:
        raise SystemExit(f"POST /v1/jobs: {resp.status_code} {resp.text}")
    return str(resp.json()["id"])


def wait(api: httpx.Client, job_id: str, poll_s: float = 1.0) -> dict[str, Any]:
    """Poll slowly: the 2-core machine runs the stack too."""
    while True:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise SystemExit(f"job {job_id} {job['status']}: {job.get('error')}")
            return dict(job)
        time.sleep(poll_s)


def wall_s(job: dict[str, Any]) -> float:
    created = datetime.fromisoformat(job["created_at"])
    finished = datetime.fromisoformat(job["finished_at"])
    return (finished - created).total_seconds()


def worker_counters(stack: Stack) -> dict[str, float]:
    """The workers' counters so far: MCTS driver steps (seconds, count) and how steps had
    their planning views (kept / built, and the nodes each read)."""
    text = httpx.get(str(stack.worker_metrics_url), timeout=30).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("ttc_driver_step_duration_seconds_") and 'strategy="mcts"' in name:
            key = "drive_s" if name.startswith("ttc_driver_step_duration_seconds_sum") else None
            key = key or ("drives" if "_count" in name else None)
        elif name.startswith(("ttc_planning_views_total", "ttc_planning_view_nodes_total")):
            source = "kept" if 'source="kept"' in name else "built"
            key = ("views_" if name.startswith("ttc_planning_views") else "nodes_") + source
        else:
            key = None
        if key:
            out[key] = out.get(key, 0.0) + float(value)
    return out


def run_one(
    api: httpx.Client, stack: Stack, simulations: int, seed: int
) -> tuple[float, dict[str, Any], dict[str, float]]:
    """(ms per simulation, the finished job, what the workers' counters gained)."""
    before = worker_counters(stack)
    job = wait(api, submit(api, simulations, seed))
    after = worker_counters(stack)
    return (
        1000 * wall_s(job) / simulations,
        job,
        {k: v - before.get(k, 0.0) for k, v in after.items()},
    )


def step_times(api: httpx.Client, job_id: str) -> tuple[float, float, float]:
    """Median time between ``step_done`` events in the job's first and last quarter of
    steps (ms), and from the last step to the job's end (ms): how a step's cost moves as
    the tree grows, and what finishing costs."""
    events, after = [], 0
    while True:
        page = api.get(f"/v1/jobs/{job_id}/events", params={"after": after, "limit": 1000}).json()
        events += page["data"]
        if page["data"]:
            after = page["data"][-1]["id"]
        if len(page["data"]) < 1000:
            break
    done = [datetime.fromisoformat(e["created_at"]) for e in events if e["kind"] == "step_done"]
    end = [datetime.fromisoformat(e["created_at"]) for e in events if e["kind"] == "status_changed"]
    gaps = [1000 * (b - a).total_seconds() for a, b in itertools.pairwise(done)]
    quarter = max(1, len(gaps) // 4)
    return (
        statistics.median(gaps[:quarter]),
        statistics.median(gaps[-quarter:]),
        1000 * (end[-1] - done[-1]).total_seconds(),
    )


def describe(
    api: httpx.Client, simulations: int, ms: float, job: dict[str, Any], gained: dict[str, float]
) -> str:
    progress = job.get("progress") or {}
    first, last, finish = step_times(api, job["id"])
    drives = gained.get("drives", 0.0)
    drive_ms = 1000 * gained.get("drive_s", 0.0) / drives if drives else float("nan")
    kept, built = gained.get("views_kept", 0.0), gained.get("views_built", 0.0)
    read = gained.get("nodes_kept", 0.0) + gained.get("nodes_built", 0.0)
    return (
        f"mcts {simulations} simulations: {wall_s(job):.1f} s, {ms:.2f} ms/simulation, "
        f"{progress.get('nodes', '?')} nodes, {progress.get('step', '?')} steps; "
        f"driver step mean {drive_ms:.1f} ms; planning views kept {kept:.0f} / built "
        f"{built:.0f}, {read / max(1.0, kept + built):.0f} nodes read per step; "
        f"median step {first:.0f} ms in the first quarter, {last:.0f} ms in the last; "
        f"finishing {finish:.0f} ms"
    )


# ------------------------------------------------------------------------------ RSS


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak RSS of each process under the given roots (the worker processes and their pool
    children), sampled every ``every_s``."""

    def __init__(self, roots: list[int], every_s: float = 1.0) -> None:
        self.roots, self.every_s = roots, every_s
        self.peak: dict[int, int] = {}
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            pids, todo = set(), list(self.roots)
            while todo:
                pid = todo.pop()
                if pid not in pids:
                    pids.add(pid)
                    todo += _children(pid)
            sizes = {pid: _rss_kb(pid) for pid in pids}
            for pid, kb in sizes.items():
                self.peak[pid] = max(self.peak.get(pid, 0), kb)
            self.peak_total = max(self.peak_total, sum(sizes.values()))
            self._stop.wait(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def worker_pids(stack: Stack) -> list[int]:
    # Each worker's Proc runs ``python -m ttc_cli.main worker ...``.
    return [p.popen.pid for p in stack.procs if "worker" in p.popen.args]  # type: ignore[operator]


# ------------------------------------------------------------------------------ UI


def open_tree(api: httpx.Client, job: dict[str, Any]) -> list[tuple[str, float]]:
    """Time what opening the job's tree in the UI asks for, in order."""
    timings: list[tuple[str, float]] = []

    def get(label: str, path: str, **params: Any) -> Any:
        began = time.perf_counter()
        resp = api.get(path, params=params)
        resp.raise_for_status()
        timings.append((label, time.perf_counter() - began))
        return resp.json() if "json" in resp.headers.get("content-type", "") else resp.text

    job_id = job["id"]
    get("tree page (root + first children)", f"/ui/jobs/{job_id}/tree")
    root = job["root_node_id"]
    page = get("root's children (GET nodes?parent_id)", f"/v1/jobs/{job_id}/nodes", parent_id=root)
    assert page["data"], "the root has children"
    path = (job.get("result") or {}).get("details", {}).get("path") or []
    for depth, node_id in enumerate(path[1:-1], start=1):
        get(f"children at depth {depth + 1}", f"/v1/jobs/{job_id}/nodes", parent_id=node_id)
    best = (job.get("result") or {}).get("node_id")
    if best:
        get("best node's detail", f"/v1/jobs/{job_id}/nodes/{best}")
    return timings


def read_events(api: httpx.Client, job_id: str) -> tuple[int, float]:
    began, after, count = time.perf_counter(), 0, 0
    while True:
        page = api.get(f"/v1/jobs/{job_id}/events", params={"after": after, "limit": 1000}).json()
        count += len(page["data"])
        if page["data"]:
            after = page["data"][-1]["id"]
        if len(page["data"]) < 1000:
            return count, time.perf_counter() - began


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_pool_arguments(parser)
    parser.add_argument("--broker", default="redis://127.0.0.1:6392/13")
    parser.add_argument("--small", type=int, default=256)
    parser.add_argument("--large", type=int, default=4096)
    parser.add_argument("--big", action="store_true", help="one ~100,000-node job instead")
    parser.add_argument("--big-simulations", type=int, default=25_000)
    ns = parser.parse_args()
    redis.Redis.from_url(ns.broker).flushdb()
    with (
        tempfile.TemporaryDirectory() as logs,
        fresh_postgres() as db_url,
        run_stack(
            **stack_workers(ns),
            database_url=db_url,
            broker_url=ns.broker,
            log_dir=Path(logs),
            sim_args=SIM_ARGS,
            endpoint_overrides={"max_concurrency": 256},
        ) as stack,
        httpx.Client(base_url=stack.api_url, timeout=120) as api,
    ):
        run_one(api, stack, 32, seed=1)  # warm-up: imports, pools, connections
        print(
            f"pool {ns.pool}, k={K}, parallel={PARALLEL}, max_depth={MAX_DEPTH}, "
            f"{os.cpu_count()} cpus"
        )
        if ns.big:
            with RssSampler(worker_pids(stack)) as rss:
                ms, job, gained = run_one(api, stack, ns.big_simulations, seed=7)
            print(describe(api, ns.big_simulations, ms, job, gained))
            print(
                f"worker RSS peak: {max(rss.peak.values()) / 1024:.0f} MiB in one process, "
                f"{rss.peak_total / 1024:.0f} MiB all {len(rss.peak)} worker processes together"
            )
            for attempt in ("cold", "warm"):
                timings = open_tree(api, job)
                total = sum(t for _, t in timings)
                print(
                    f"open the tree ({attempt}): {1000 * total:.0f} ms in {len(timings)} requests"
                )
                for label, t in timings:
                    print(f"  {1000 * t:7.1f} ms  {label}")
            count, took = read_events(api, job["id"])
            print(f"then the page reads the job's {count} events: {1000 * took:.0f} ms")
            return
        results: list[tuple[int, float]] = []
        for simulations, seed in ((ns.small, 11), (ns.large, 12), (ns.small, 13)):
            ms, job, gained = run_one(api, stack, simulations, seed)
            results.append((simulations, ms))
            print(describe(api, simulations, ms, job, gained), flush=True)
        small = [ms for s, ms in results if s == ns.small]
        large = next(ms for s, ms in results if s == ns.large)
        print(
            f"ms per simulation: {ns.small} -> {statistics.mean(small):.2f} (runs "
            f"{', '.join(f'{m:.2f}' for m in small)}), {ns.large} -> {large:.2f}; "
            f"ratio {ns.large}/{ns.small} = {large / statistics.mean(small):.2f} (target <= 1.2)"
        )


if __name__ == "__main__":
    main()
