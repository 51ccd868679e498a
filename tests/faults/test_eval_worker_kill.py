"""An eval whose worker is killed (SIGKILL) mid-run finishes with the same numbers as an
uninterrupted run of the same seeds: its jobs resume from their trees, the reaper
re-runs a driver step the kill lost, and every sample and estimator is seeded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.eval_support import DOUBLING, finished, graded_rows, submit, upload
from tests.helpers import REDIS_BASE, fresh_postgres, wait_until
from ttc_cli.stack import Proc, Stack, run_stack
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer

pytestmark = pytest.mark.integration

REDIS_DB = 9
FAST_RECOVERY = {
    "TTC_BATCH_LEASE_S": "4",
    "TTC_STALL_S": "2",
    "TTC_REAPER_INTERVAL_S": "0.5",
    "TTC_EXPAND_BATCH_SAMPLES": "64",
    "TTC_MAX_BATCH_ATTEMPTS": "8",
    "TTC_BATCH_MESSAGE_LOST_S": "6",
    # Few jobs live at once: the kill lands while most of the eval is still to start.
    "TTC_EVAL_MAX_ACTIVE_JOBS": "4",
}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, SimServer]]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    with (
        SimServer(SimConfig(base_latency_s=0.1, per_token_latency_s=0.0, slots=64)) as sim,
        fresh_postgres() as db_url,
        run_stack(
            database_url=db_url,
            broker_url=broker,
            log_dir=tmp_path,
            sim_url=sim.url,
            endpoint_overrides={"max_n_per_request": 64},
            extra_env=FAST_RECOVERY,
            beat=True,
        ) as running,
    ):
        yield running, sim


def _numbers(ev: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the kill: accuracies, intervals, coverage, comparisons."""
    points = {
        (p["arm"], p["value"]): (p["problems"], p["accuracy"], p["ci95"], p["pass_at_k"])
        for p in ev["points"]
    }
    comparisons = {
        (c["arm_a"], c["arm_b"], c["value"]): (c["difference"], c["ci95"], c["mcnemar_p"])
        for c in ev["comparisons"]
    }
    return {"points": points, "comparisons": comparisons}


def test_eval_killed_mid_run_finishes_with_the_same_numbers(
    stack: tuple[Stack, SimServer], tmp_path: Path
) -> None:
    running, sim = stack
    with httpx.Client(base_url=running.api_url, timeout=60) as api:
        dataset = upload(api, graded_rows(10, seed=8))
        body = {
            "dataset": dataset,
            "endpoint": "sim",
            "arms": [{"strategy": "best_of_n"}, {"strategy": "self_consistency"}],
            "grid": {"n": DOUBLING},
            "seed": 11,
            # Both runs generate (the second is to be killed mid-generation): with the
            # cache on, the second would be served the first's samples.
            "cache": "off",
        }
        clean = finished(api, submit(api, body))
        assert clean["status"] == "succeeded", clean
        print(f"uninterrupted: {clean['progress']['elapsed_s']} s")

        eval_id = submit(api, body)
        kills = 0
        for round_ in range(2):
            # Kill while the worker has samples at the simulator and the eval has more
            # jobs to start: a batch in flight is cut off, a wave is interrupted.
            wait_until(lambda: sim.metrics["in_flight_sequences"] > 0, timeout=60, every=0.01)
            progress = api.get(f"/v1/evals/{eval_id}", params={"curves": "false"}).json()
            if progress["status"] != "running":
                break
            worker = next(p for p in running.procs if "worker" in p.popen.args and not p.closed)
            worker.kill()
            kills += 1
            running.procs.append(
                Proc(["worker", "--concurrency", "2"], running.env, tmp_path / f"w{round_}.log")
            )
            time.sleep(1.0)
        killed = finished(api, eval_id, timeout=240)
        print(f"{kills} kills: {killed['progress']['elapsed_s']} s")
        jobs = api.get(f"/v1/evals/{eval_id}/jobs", params={"limit": 500}).json()["data"]
    assert kills == 2, "the eval finished before the worker could be killed twice"
    assert killed["status"] == "succeeded", killed
    # One run of 64 samples per problem serves both arms (they sample alike).
    assert killed["progress"]["jobs_done"] == clean["progress"]["jobs_done"] == 10
    assert all(j["status"] == "succeeded" for j in jobs)
    assert _numbers(killed) == _numbers(clean)
    assert len(killed["points"]) == 2 * len(DOUBLING)
