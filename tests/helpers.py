"""Shared test helpers: fresh Postgres databases, polling. Processes: ttc_cli.stack."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ttc_cli.stack import fresh_postgres

__all__ = ["REDIS_BASE", "fresh_postgres", "wait_until"]

REDIS_BASE = os.environ.get("TTC_TEST_REDIS", "redis://127.0.0.1:6379")


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(every)
