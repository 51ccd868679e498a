"""Webhooks end to end, all real: the API server process with API keys on, Postgres, a
Celery worker (the ``ttc.webhooks`` queue) and beat (the reaper), the simulated
endpoint, and receivers on 127.0.0.1 that verify every signature with the
``standardwebhooks`` package from PyPI. The same tests run against the embedded server
(SQLite, the in-process executor), which sends from its own loop.

Loopback is reachable only because this stack sets ``TTC_WEBHOOK_ALLOW_HOSTS=127.0.0.1``
(and ``TTC_WEBHOOK_ALLOW_HTTP=true``); the retry schedule is ``[0, 1, 1, 2]`` seconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.api.webhook_receiver import Receiver, Reply
from tests.helpers import REDIS_BASE, fresh_postgres, wait_until
from ttc_cli.migrate import upgrade
from ttc_cli.stack import Proc, free_port, run_stack, wait_http
from ttc_core.service.auth import create_key
from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job
from ttc_core.webhooks.events import WebhookEvent, add_delivery
from ttc_core.webhooks.wakeup import current_waker
from ttc_sim.config import SimConfig
from ttc_sim.runner import SimServer
from ttc_sim.tasks import gsm8k_problems

pytestmark = pytest.mark.integration

REDIS_DB = 11
QUESTION = gsm8k_problems()[0].question
WEBHOOK_ENV = {
    "TTC_WEBHOOK_ALLOW_HTTP": "true",
    "TTC_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "TTC_WEBHOOK_RETRY_SCHEDULE_S": "[0, 1, 1, 2]",
    "TTC_WEBHOOK_TIMEOUT_S": "5",
    "TTC_WEBHOOK_REAP_AFTER_S": "1",
    "TTC_REAPER_INTERVAL_S": "1",
    "TTC_WEBHOOK_SECRET_GRACE_S": "3600",
}


@dataclass
class HookStack:
    kind: str
    url: str
    database_url: str
    clients: list[httpx.Client] = field(default_factory=list)

    def tenant(self) -> tuple[str, httpx.Client]:
        """A fresh tenant and a client holding its key."""
        name = f"t-{uuid.uuid4().hex[:10]}"
        with Database(self.database_url).transaction() as session:
            _, key = create_key(session, name, name="webhook tests")
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        self.clients.append(client)
        return name, client


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    with SimServer(SimConfig(base_latency_s=0.01, per_token_latency_s=0.0, slots=64)) as server:
        yield server


def _celery_stack(sim: SimServer, logs: Path) -> Iterator[HookStack]:
    broker = f"{REDIS_BASE}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    with (
        fresh_postgres() as pg_url,
        run_stack(
            database_url=pg_url,
            broker_url=broker,
            log_dir=logs,
            sim_url=sim.url,
            auth=True,
            beat=True,
            extra_endpoints={"sim-slow": {"model": "sim-gsm8k;base_latency_s=5"}},
            extra_env=WEBHOOK_ENV,
        ) as running,
    ):
        stack = HookStack("celery", running.api_url, pg_url)
        try:
            yield stack
        finally:
            _report(stack, running.procs)


def _embedded_stack(sim: SimServer, logs: Path) -> Iterator[HookStack]:
    url = f"sqlite:///{logs / 'ttc.db'}"
    upgrade(url)
    endpoints = {
        "sim": {"base_url": sim.url + "/v1", "model": "sim-gsm8k"},
        "sim-slow": {"base_url": sim.url + "/v1", "model": "sim-gsm8k;base_latency_s=5"},
    }
    port = free_port()
    env = {
        "TTC_DATABASE_URL": url,
        "TTC_EXECUTOR": "local",
        "TTC_ENDPOINTS": json.dumps(endpoints),
        **WEBHOOK_ENV,
    }
    api = Proc(["serve", "--port", str(port), "--log-level", "warning"], env, logs / "api.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=api)
        stack = HookStack("embedded", f"http://127.0.0.1:{port}", url)
        try:
            yield stack
        finally:
            _report(stack, [api])
    finally:
        api.stop()


def _report(stack: HookStack, procs: list[Proc]) -> None:
    for client in stack.clients:
        client.close()
    for proc in procs:
        if "Traceback" in proc.log():
            print(f"--- {proc.log_path.name} ---\n{proc.log()[-4000:]}")


@pytest.fixture(scope="module", params=["celery", "embedded"])
def stack(
    request: pytest.FixtureRequest, sim: SimServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HookStack]:
    logs = Path(tmp_path_factory.mktemp(f"webhooks-{request.param}"))
    make = _celery_stack if request.param == "celery" else _embedded_stack
    yield from make(sim, logs)


def job_body(url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "strategy": "self_consistency",
        "endpoint": "sim",
        "prompt": QUESTION,
        "params": {"n": 2, "max_tokens": 64},
        "webhook": {"url": url},
        **overrides,
    }


def submit(client: httpx.Client, body: dict[str, Any]) -> str:
    resp = client.post("/v1/jobs", json=body)
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def wait_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    result: dict[str, Any] = wait_until(finished, timeout=60)
    return result


def deliveries(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    resp = client.get(f"/v1/jobs/{job_id}/deliveries")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def wait_delivery_status(client: httpx.Client, job_id: str, status: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = deliveries(client, job_id)
        return found[0] if found and found[0]["status"] == status else None

    result: dict[str, Any] = wait_until(reached, timeout=60)
    return result


def secret(client: httpx.Client) -> str:
    resp = client.get("/v1/webhooks/secret")
    assert resp.status_code == 200, resp.text
    return str(resp.json()["secret"])


def test_a_finished_job_is_delivered_signed_and_logged(stack: HookStack) -> None:
    _, client = stack.tenant()
    key = secret(client)
    with Receiver() as receiver:
        job_id = submit(client, job_body(receiver.url()))
        job = wait_job(client, job_id)
        delivery = wait_delivery_status(client, job_id, "delivered")
        (request,) = receiver.received
    payload = request.verify(key)  # standardwebhooks, with the secret the API gave us
    assert payload["type"] == "job.succeeded" and job["status"] == "succeeded"
    assert payload["data"]["job_id"] == job_id
    assert payload["data"]["result"]["answer"] == job["result"]["answer"]
    assert payload["data"]["usage"]["total_tokens"] == job["usage"]["total_tokens"] > 0
    assert request.headers["webhook-id"] == delivery["id"]
    assert request.headers["content-type"] == "application/json"
    assert delivery["event"] == "job.succeeded" and delivery["attempts"] == 1
    (attempt,) = delivery["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert attempt["latency_ms"] >= 0 and attempt["next_attempt_at"] is None
    assert attempt["address"] == "127.0.0.1"


def test_a_receiver_down_for_two_attempts_gets_the_event_later(stack: HookStack) -> None:
    _, client = stack.tenant()
    key = secret(client)
    with Receiver([Reply(503), Reply(503)]) as receiver:
        job_id = submit(client, job_body(receiver.url()))
        delivery = wait_delivery_status(client, job_id, "delivered")
        assert len(receiver.received) == 3
        assert {r.headers["webhook-id"] for r in receiver.received} == {delivery["id"]}
        assert all(r.verifies(key) for r in receiver.received)
        gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    # Retries waited their schedule (1 s, 1 s, each with ±20% jitter).
    assert all(gap >= 0.75 for gap in gaps), gaps
    log = delivery["attempt_log"]
    assert [a["attempt"] for a in log] == [1, 2, 3]
    assert [a["status_code"] for a in log] == [503, 503, 200]
    assert [a["error"] for a in log] == ["receiver answered 503"] * 2 + [None]
    assert all(a["latency_ms"] is not None for a in log)
    assert log[0]["next_attempt_at"] is not None and log[1]["next_attempt_at"] is not None
    assert log[2]["next_attempt_at"] is None
    assert delivery["last_status_code"] == 200 and delivery["delivered_at"] is not None


def test_redelivery_sends_the_same_webhook_id_again(stack: HookStack) -> None:
    _, client = stack.tenant()
    key = secret(client)
    with Receiver() as receiver:
        job_id = submit(client, job_body(receiver.url()))
        delivery = wait_delivery_status(client, job_id, "delivered")
        resp = client.post(f"/v1/jobs/{job_id}/deliveries/{delivery['id']}/redeliver")
        assert resp.status_code == 202, resp.text
        wait_until(lambda: len(receiver.received) == 2, timeout=30)
        first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery["id"]
    assert first.verify(key) == second.verify(key)  # same body
    again = wait_until(
        lambda: (
            (d := deliveries(client, job_id)[0])["attempts"] == 2
            and d["status"] == "delivered"
            and d
        ),
        timeout=30,
    )
    assert [(a["attempt"], a["manual"]) for a in again["attempt_log"]] == [(1, False), (2, True)]
    missing = client.post(f"/v1/jobs/{job_id}/deliveries/msg_nope/redeliver")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_rotation_sends_both_signatures_during_the_grace_period(stack: HookStack) -> None:
    _, client = stack.tenant()
    old = secret(client)
    resp = client.post("/v1/webhooks/secret/rotate")
    assert resp.status_code == 200, resp.text
    new = resp.json()["secret"]
    assert new != old and new.startswith("whsec_")
    assert len(resp.json()["previous"]) == 1
    assert secret(client) == new
    with Receiver() as receiver:
        job_id = submit(client, job_body(receiver.url()))
        wait_delivery_status(client, job_id, "delivered")
        (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert request.verify(old) == request.verify(new)  # a receiver with the OLD one too


def test_a_delivery_is_exhausted_after_the_schedule_and_the_job_says_so(
    stack: HookStack,
) -> None:
    _, client = stack.tenant()
    with Receiver(default=Reply(500)) as receiver:
        job_id = submit(client, job_body(receiver.url()))
        delivery = wait_delivery_status(client, job_id, "exhausted")
        assert len(receiver.received) == 4  # the schedule has four entries
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500] * 4
    assert delivery["next_attempt_at"] is None
    events = client.get(f"/v1/jobs/{job_id}/events").json()["data"]
    exhausted = [e for e in events if e["kind"] == "webhook_exhausted"]
    assert len(exhausted) == 1 and exhausted[0]["data"]["delivery_id"] == delivery["id"]


def test_cancelling_a_job_delivers_job_cancelled(stack: HookStack) -> None:
    _, client = stack.tenant()
    key = secret(client)
    with Receiver() as receiver:
        job_id = submit(client, job_body(receiver.url(), endpoint="sim-slow"))
        assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
        delivery = wait_delivery_status(client, job_id, "delivered")
        (request,) = receiver.received
    assert delivery["event"] == "job.cancelled"
    assert request.verify(key)["data"]["status"] == "cancelled"


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://167772161/",  # 10.0.0.1 in decimal
        "http://2130706434/",  # 127.0.0.2 in decimal (only 127.0.0.1 is allowed here)
        "http://0177.0.0.2/",  # 127.0.0.2 in octal
        "http://[::ffff:169.254.169.254]/",
        "ftp://127.0.0.1/",
        "http://user:pw@127.0.0.1/",
    ],
)
def test_hostile_webhook_urls_are_refused_at_submission(stack: HookStack, url: str) -> None:
    _, client = stack.tenant()
    resp = client.post("/v1/jobs", json=job_body(url))
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["field"] == "webhook.url"
    assert problem["detail"]
    assert client.get("/v1/jobs").json()["data"] == []  # nothing was written


def test_another_tenant_cannot_see_or_redeliver_deliveries(stack: HookStack) -> None:
    _, owner = stack.tenant()
    _, other = stack.tenant()
    with Receiver() as receiver:
        job_id = submit(owner, job_body(receiver.url()))
        delivery = wait_delivery_status(owner, job_id, "delivered")
    assert other.get(f"/v1/jobs/{job_id}/deliveries").status_code == 404
    resp = other.post(f"/v1/jobs/{job_id}/deliveries/{delivery['id']}/redeliver")
    assert resp.status_code == 404
    assert secret(other) != secret(owner)  # a signing secret per tenant
    assert httpx.get(stack.url + "/v1/webhooks/secret").status_code == 401


@pytest.mark.parametrize("stack", ["celery"], indirect=True)  # the reaper runs on beat
def test_the_reaper_sends_a_delivery_whose_wake_up_was_lost(stack: HookStack) -> None:
    tenant, client = stack.tenant()
    key = secret(client)
    with Receiver() as receiver:
        job_id = submit(client, job_body(receiver.url()))
        wait_delivery_status(client, job_id, "delivered")
        # Write a delivery from this process, which has no waker: no message is sent,
        # only the reaper's sweep can find it.
        assert current_waker() is None
        settings = Settings(webhook_retry_schedule_s=[0])
        with Database(stack.database_url).transaction() as session:
            job = session.get(Job, job_id)
            assert job is not None and job.tenant == tenant
            lost = add_delivery(session, job, WebhookEvent.succeeded, settings)
            assert lost is not None
            lost_id = lost.id
        wait_until(lambda: len(receiver.received) == 2, timeout=60)
        assert receiver.received[1].headers["webhook-id"] == lost_id
        assert receiver.received[1].verifies(key)
