"""Operations acceptance, on the real ``ttc stack --flower --beat`` (the CLI, as a user
starts it): a beam search runs while the API's and the worker's metrics are scraped and
parsed with ``prometheus_client.parser``; their counters agree with the job's usage;
every log line of the stack is JSON and the lines about the job carry its id; Flower's
API lists the worker and the job's tasks; SIGTERM to ``ttc stack`` leaves no process of
its tree running."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import REDIS_BASE, fresh_postgres, wait_until
from ttc_sim.tasks import gsm8k_problems

pytestmark = pytest.mark.integration

REDIS_DB = 2  # its own: the OpenAI tests' session-scoped stack holds 15
PRM = {"kind": "prm", "endpoint": "sim-prm", "aggregation": "min"}


@dataclass
class CliStack:
    proc: subprocess.Popen[str]
    banner: str
    api_url: str
    worker_metrics_url: str
    flower_url: str
    log_dir: Path
    database_url: str


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc: parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def cli_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliStack]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    log_dir = tmp_path_factory.mktemp("stack-logs")
    with fresh_postgres() as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TTC_", "OTEL_"))}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        command = [sys.executable, "-m", "ttc_cli.main", "stack", "--database-url", url]
        command += ["--broker-url", broker, "--port", "0", "--flower", "--flower-port", "0"]
        command += ["--beat", "--log-dir", str(log_dir)]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        lines: list[str] = []
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "SIGTERM stops everything" in line:
                break
        banner = "".join(lines)
        assert "SIGTERM stops everything" in banner, banner

        def link(label: str) -> str:
            found = re.search(rf"{label}\s+(?:metrics )?(http://\S+)", banner)
            assert found, (label, banner)
            return found.group(1)

        stack = CliStack(proc, banner, link("api"), link("worker"), link("flower"), log_dir, url)
        try:
            yield stack
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)  # the children follow (PDEATHSIG)
            proc.wait(timeout=30)
            proc.stdout.close()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page (parsed by prometheus_client's parser)."""
    text = httpx.get(url, timeout=10).text
    return parse(text)


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


def test_banner_says_auth_is_off_and_where_things_are(cli_stack: CliStack) -> None:
    assert "AUTH IS OFF" in cli_stack.banner
    assert httpx.get(cli_stack.api_url + "/health", timeout=5).status_code == 200
    assert "beat" in cli_stack.banner


def test_a_beam_search_on_the_stack(cli_stack: CliStack) -> None:
    with (
        httpx.Client(base_url=cli_stack.api_url, timeout=30) as api,
        httpx.Client(base_url=cli_stack.flower_url, timeout=30) as flower,
    ):
        beam_search_on_the_stack(cli_stack, api, flower)


def beam_search_on_the_stack(cli_stack: CliStack, api: httpx.Client, flower: httpx.Client) -> None:
    problem = gsm8k_problems()[2]
    body = {
        "strategy": "beam_search",
        "endpoint": "sim",
        "prompt": problem.question,
        "params": {"n": 8, "beam_width": 2, "max_depth": 5},
        "prm": PRM,
        "reference": problem.answer,
        "seed": 5,
    }
    resp = api.post("/v1/jobs", json=body, headers={"X-Request-ID": "ops-test-submit"})
    assert resp.status_code == 202, resp.text
    assert resp.headers["x-request-id"] == "ops-test-submit"
    job_id = resp.json()["id"]

    # Mid-job scrapes parse too.
    parse(httpx.get(cli_stack.api_url + "/metrics", timeout=10).text)
    parse(httpx.get(cli_stack.worker_metrics_url, timeout=10).text)

    def finished() -> dict[str, Any] | None:
        job = api.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in {"succeeded", "failed", "cancelled"} else None

    job = wait_until(finished, timeout=120, every=0.3)
    assert job["status"] == "succeeded", job
    usage = job["usage"]

    # --- metrics: the worker node's counters agree with the job's own usage ---------
    def settled() -> dict[Any, float] | None:
        worker = scrape(cli_stack.worker_metrics_url)
        done = total(worker, "ttc_jobs_finished_total", status="succeeded")
        return worker if done == 1 else None

    worker = wait_until(settled, timeout=15)
    labels = {"endpoint": "sim", "tenant": "default"}
    assert (
        total(worker, "ttc_tokens_total", kind="completion", **labels) == usage["completion_tokens"]
    )
    assert total(worker, "ttc_tokens_total", kind="prompt", **labels) == usage["prompt_tokens"]
    assert total(worker, "ttc_job_requests_total", **labels) == usage["requests"]
    # What went over the wire: one 200 per request charged (the simulator has no faults),
    # the generator's and the PRM's (the job's requests count both).
    generated = total(worker, "ttc_inference_requests_total", endpoint="sim", code="200")
    scored = total(worker, "ttc_inference_requests_total", endpoint="sim-prm", code="200")
    assert generated > 0 and scored > 0
    assert generated + scored == usage["requests"]
    assert total(worker, "ttc_inference_request_duration_seconds_count") == usage["requests"]
    assert total(worker, "ttc_jobs_finished_total", strategy="beam_search") == 1
    assert total(worker, "ttc_nodes_total", endpoint="sim") > 0
    assert total(worker, "ttc_driver_step_duration_seconds_count", strategy="beam_search") >= 2
    assert total(worker, "ttc_worker_processes") == 2
    assert total(worker, "ttc_scorer_call_duration_seconds_count", kind="prm") > 0

    # Each process of the node (the main one, two pool processes): its own files parse.
    files = list((cli_stack.log_dir / "worker-metrics").glob("*.db"))
    pids = {re.sub(r"\D", "", f.name.rsplit("_", 1)[-1]) for f in files}
    per_process_tokens = 0.0
    pool = 0
    for pid in pids:
        one = cli_stack.log_dir / f"process-{pid}"
        one.mkdir(exist_ok=True)
        for f in files:
            if f.name.endswith(f"_{pid}.db"):
                shutil.copy(f, one / f.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(one))
        samples = parse(generate_latest(registry).decode())
        pool += int(total(samples, "ttc_worker_processes"))
        per_process_tokens += total(samples, "ttc_tokens_total", kind="completion", **labels)
    assert pool == 2, [f.name for f in files]
    assert per_process_tokens == usage["completion_tokens"]

    api_metrics = scrape(cli_stack.api_url + "/metrics")
    assert total(api_metrics, "ttc_jobs_submitted_total", strategy="beam_search") == 1
    assert total(api_metrics, "ttc_http_requests_total", route="/v1/jobs", code="202") == 1
    queues = {dict(k[1])["queue"] for k in api_metrics if k[0] == "ttc_celery_queue_length"}
    assert {"ttc.driver", "ttc.expand", "ttc.webhooks"} <= queues
    assert total(api_metrics, "ttc_endpoint_concurrency_limit", endpoint="sim") == 64
    assert total(api_metrics, "ttc_broker_up") == 1

    # --- logs: JSON lines, and the lines about the job carry its id ------------------
    with psycopg.connect(cli_stack.database_url) as conn:
        batch_ids = {
            r[0]
            for r in conn.execute("SELECT id FROM expansion_batches WHERE job_id = %s", (job_id,))
        }
    assert batch_ids
    about_job = 0
    task_lines = 0
    for log_file in sorted(cli_stack.log_dir.glob("*.log")):
        for number, line in enumerate(log_file.read_text().splitlines(), 1):
            try:
                entry = json.loads(line)
            except ValueError:
                pytest.fail(f"{log_file.name}:{number} is not JSON: {line[:300]}")
            assert {"ts", "level", "logger", "message"} <= set(entry), (log_file.name, entry)
            text = entry["message"]
            if job_id in text or any(b in text for b in batch_ids):
                about_job += 1
                assert entry.get("job_id") == job_id, (log_file.name, entry)
            if entry["logger"].startswith("celery.") and re.search(
                r"Task ttc\.(advance|expand)\[", text
            ):
                task_lines += 1
                assert entry.get("job_id") == job_id, (log_file.name, entry)
    assert about_job > 0
    assert task_lines > 0
    api_log = (cli_stack.log_dir / "api.log").read_text()
    assert '"request_id": "ops-test-submit"' in api_log

    # --- Flower: the worker, and the job's tasks with names that say what ran -------
    workers = wait_until(lambda: flower.get("/api/workers", params={"refresh": 1}).json(), 30)
    assert any(name.startswith("celery@") for name in workers), workers

    def job_tasks() -> list[dict[str, Any]] | None:
        tasks = flower.get("/api/tasks").json()
        ours = [
            t
            for t in tasks.values()
            if job_id in str(t.get("args")) or any(b in str(t.get("args")) for b in batch_ids)
        ]
        names = {t["name"] for t in tasks.values()}
        return ours if ours and "ttc.reap" in names else None  # beat's reaper runs too

    ours = wait_until(job_tasks, timeout=30, every=0.5)
    names = {t["name"] for t in ours}
    assert "ttc.advance" in names, names
    results = " ".join(str(t.get("result")) for t in ours)
    assert f"of job {job_id}" in results, results
    assert "continued inline" in results, results  # a beam search goes on depth by depth


def test_sigterm_stops_every_child(cli_stack: CliStack) -> None:
    tree = descendants(cli_stack.proc.pid)
    # sim, worker (+ 2 pool processes), beat, flower, api
    assert len(tree) >= 7, tree
    cli_stack.proc.send_signal(signal.SIGTERM)
    assert cli_stack.proc.wait(timeout=90) == 0
    wait_until(lambda: not [p for p in tree if alive(p)], timeout=30, every=0.2)
