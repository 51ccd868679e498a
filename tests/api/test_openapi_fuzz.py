"""Schemathesis against ``/openapi.json`` of the real API process (with Postgres, Redis,
a Celery worker and the simulated endpoint): a bounded, derandomized number of generated
requests per operation, valid and invalid, each checked for no 5xx, a documented status
code, a documented content type, a body that matches its schema and the documented
headers. Every failure of every operation is collected and reported together."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import hypothesis
import pytest
import redis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from tests.helpers import REDIS_BASE, fresh_postgres
from ttc_cli.migrate import upgrade
from ttc_cli.stack import run_stack
from ttc_core.engine.control import expand_node
from ttc_core.search.tree import node_id_for
from ttc_core.service.auth import create_key
from ttc_core.store.db import Database
from ttc_core.store.models import ExpansionBatch, Job, Node

pytestmark = pytest.mark.integration

REDIS_DB = 6
#: Generated requests per operation: valid input with random ids, valid input on a real
#: job and its nodes (operations with path parameters), and invalid input.
GENERATED, ON_REAL_ROWS, INVALID = 10, 12, 8
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@dataclass
class Target:
    api_url: str
    admin_key: str


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    with fresh_postgres() as db_url:
        with Database(db_url).transaction() as session:
            _, admin_key = create_key(session, "fuzz", admin=True)
        with run_stack(
            database_url=db_url,
            broker_url=broker,
            log_dir=Path(tmp_path_factory.mktemp("fuzz-logs")),
            auth=True,
            # Generated jobs are real work for the worker: keep each one small.
            extra_env={
                "TTC_MAX_N": "16",
                "TTC_MAX_DEPTH": "6",
                "TTC_MAX_BATCH_PROBLEMS": "2",
                "TTC_WEBHOOK_ALLOW_HTTP": "true",
            },
        ) as running:
            try:
                yield Target(running.api_url, admin_key)
            finally:
                for proc in running.procs:
                    if "Traceback" in proc.log():
                        print(f"--- {proc.log_path.name} ---\n{proc.log()[-6000:]}")


def _real_ids(target: Target, headers: dict[str, str]) -> dict[str, str]:
    """A finished job and two of its nodes, so that generated requests reach real rows
    (random ids only ever test the 404 path)."""
    spec = {
        "strategy": "best_of_n",
        "endpoint": "sim",
        "prompt": "What is 17 * 23?",
        "params": {"n": 4},
        "reference": "391",
    }
    with requests.Session() as http:
        job = http.post(f"{target.api_url}/v1/jobs", json=spec, headers=headers, timeout=30)
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        deadline = time.monotonic() + 120
        while http.get(f"{target.api_url}/v1/jobs/{job_id}", headers=headers).json()[
            "status"
        ] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, "the seed job did not finish"
            time.sleep(0.2)
        nodes = http.get(f"{target.api_url}/v1/jobs/{job_id}/nodes", headers=headers).json()
    root, child = nodes["data"][0]["id"], nodes["data"][1]["id"]
    return {"job_id": job_id, "node_id": child, "root": root}


def _fuzz(
    operation: schemathesis.APIOperation,
    strategy: SearchStrategy[schemathesis.Case],
    examples: int,
    send: Callable[[schemathesis.Case], None],
) -> str | None:
    """Run ``send`` on ``examples`` cases drawn from ``strategy``; the failure, if any."""

    @hypothesis.settings(
        max_examples=examples,
        derandomize=True,  # the same requests on every run
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # report, do not shrink
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        send(case)

    try:
        run()
    except Exception as exc:  # collected: one run reports every operation
        return f"{operation.label}: {exc}"
    return None


def test_no_server_errors_and_no_schema_violations(target: Target) -> None:
    schema = schemathesis.openapi.from_url(f"{target.api_url}/openapi.json", timeout=30)
    headers = {"Authorization": f"Bearer {target.admin_key}"}
    real = _real_ids(target, headers)
    failures: list[str] = []
    statuses: Counter[tuple[str, int]] = Counter()
    operations = 0
    started = time.monotonic()
    with requests.Session() as http:

        def send(case: schemathesis.Case) -> None:
            response = case.call(base_url=target.api_url, session=http, headers=headers)
            statuses[case.operation.label, response.status_code] += 1
            case.validate_response(response, checks=CHECKS, headers=headers)

        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            names = {p.name for p in operation.path_parameters}
            fixed = {k: v for k, v in real.items() if k in names}
            strategies = [
                (operation.as_strategy(generation_mode=GenerationMode.POSITIVE), GENERATED),
                # The documented examples, once each.
                *((s, 1) for s in operation.get_strategies_from_examples()),
            ]
            if fixed:
                strategies.append((operation.as_strategy(path_parameters=fixed), ON_REAL_ROWS))
            if any(True for _ in operation.iter_parameters()) or operation.body:
                negative = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
                strategies.append((negative, INVALID))
            for strategy, examples in strategies:
                failure = _fuzz(operation, strategy, examples, send)
                if failure:
                    failures.append(failure)
    elapsed = time.monotonic() - started
    print(f"fuzzed {operations} operations, {statuses.total()} requests in {elapsed:.0f}s")
    for (label, status), count in sorted(statuses.items()):
        print(f"  {label}: {status} x{count}")
    assert operations >= 20, "the document lost its operations"
    assert not failures, "\n\n".join(failures)
    # Requests reached real rows and succeeded, not only the error paths.
    for label in ("POST /v1/jobs", "GET /v1/jobs/{job_id}", "GET /v1/jobs/{job_id}/nodes"):
        assert any(status < 300 for (op, status) in statuses if op == label), label


def test_regression_two_quick_expands_of_one_node_plan_disjoint_children(
    tmp_path: Path,
) -> None:
    """Found by the fuzzer: a second expand before the first one's children existed
    planned the same child indexes and the same batch id (a 500 on the unique key)."""
    url = f"sqlite:///{tmp_path / 'ttc.db'}"
    upgrade(url)
    db = Database(url)
    job_id = "regression-job"
    root = node_id_for(job_id, None, 0)
    with db.transaction() as session:
        session.add(Job(id=job_id, strategy="best_of_n", endpoint="sim", status="succeeded"))
        session.add(Node(id=root, job_id=job_id, parent_id=None, role="root", text="2+2?"))
    for k in (3, 2):
        with db.transaction() as session:
            expand_node(session, job_id, root, k)
    with db.session() as session:
        specs = [
            item
            for spec in session.scalars(select(ExpansionBatch.spec).order_by(ExpansionBatch.id))
            for item in spec
        ]
    ranges = sorted((item["first_index"], item["first_index"] + item["k"]) for item in specs)
    assert ranges == [(0, 3), (3, 5)]
