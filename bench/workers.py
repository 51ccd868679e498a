"""The worker shapes the benchmarks compare: ``--pool prefork`` (one worker, 2 pool
processes, one task each at a time: the default) and ``--pool threads`` (2 worker
processes, each running up to ``--threads`` tasks at once on one event loop)."""

from __future__ import annotations

import argparse
from typing import Any


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pool", choices=("prefork", "threads"), default="prefork")
    parser.add_argument("--threads", type=int, default=64, help="tasks per process (threads)")


def stack_workers(ns: argparse.Namespace) -> dict[str, Any]:
    """``run_stack`` keyword arguments for the chosen shape: 2 processes either way."""
    if ns.pool == "threads":
        return {
            "worker_args": ("--pool", "threads", "--concurrency", str(ns.threads)),
            "worker_processes": 2,
        }
    return {"worker_args": ("--concurrency", "2", "--pool", "prefork"), "worker_processes": 1}
