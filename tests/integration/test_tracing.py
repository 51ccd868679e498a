"""With tracing on (an in-memory span exporter), a job's spans form one trace from the
submission to its last inference call, across the Celery queue (context in the message
headers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.helpers import REDIS_BASE, fresh_postgres
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems

pytestmark = pytest.mark.integration

REDIS_DB = 8
SCRIPT = Path(__file__).with_name("trace_job.py")


def test_a_job_is_one_linked_trace() -> None:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    problem = gsm8k_problems()[1]
    body = {
        "strategy": "beam_search",
        "endpoint": "sim",
        "prompt": problem.question,
        "params": {"n": 4, "beam_width": 2, "max_depth": 3},
        "prm": {"kind": "prm", "endpoint": "sim-prm"},
        "reference": problem.answer,
        "seed": 3,
    }
    with (
        SimServer(SimConfig(base_latency_s=0.005, per_token_latency_s=0.0)) as sim,
        fresh_postgres() as url,
    ):
        endpoints = {
            "sim": {"base_url": sim.url + "/v1", "model": "sim-gsm8k"},
            "sim-prm": {"base_url": sim.url, "model": "sim-prm", "kind": "reward"},
        }
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TTC_", "OTEL_"))},
            "TTC_DATABASE_URL": url,
            "TTC_BROKER_URL": broker,
            "TTC_EXECUTOR": "celery",
            "TTC_ENDPOINTS": json.dumps(endpoints),
            "TTC_AUTH_ENABLED": "false",
            "TTC_ALLOW_INSECURE_NO_AUTH": "true",
        }
        out = subprocess.run(
            [sys.executable, str(SCRIPT), json.dumps(body)],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["job"]["status"] == "succeeded", result["job"]
    spans = result["spans"]
    by_id = {s["span_id"]: s for s in spans}
    names = [s["name"] for s in spans]
    for expected in ("ttc.submit", "ttc.task ttc.advance", "ttc.driver_step", "ttc.expansion"):
        assert expected in names, names
    assert "chat sim-gsm8k" in names and "ttc.score prm" in names, names

    (submit,) = [s for s in spans if s["name"] == "ttc.submit"]
    assert submit["attributes"]["ttc.job_id"] == result["job"]["id"]
    inference = [s for s in spans if s["name"] == "chat sim-gsm8k"]
    # One client span per answered request, generation and reward model alike.
    requests = [s for s in spans if "gen_ai.operation.name" in s["attributes"]]
    assert {s["name"] for s in requests} == {"chat sim-gsm8k", "pooling sim-prm"}, names
    assert len(requests) == result["job"]["usage"]["requests"]

    def chain(span: dict[str, object]) -> list[str]:
        names = []
        current: dict[str, object] | None = span
        while current is not None:
            names.append(str(current["name"]))
            parent = current["parent_id"]
            current = by_id.get(str(parent)) if parent else None
        return names

    # Every inference call, the last one included, hangs under the submission.
    last = max(inference, key=lambda s: s["end"])
    path = chain(last)
    assert path[-1] == "ttc.submit", path
    assert "ttc.expansion" in path and any(p.startswith("ttc.task ") for p in path), path
    for span in inference:
        assert chain(span)[-1] == "ttc.submit"
        assert span["trace_id"] == submit["trace_id"]
        assert span["attributes"]["gen_ai.request.model"] == "sim-gsm8k"
