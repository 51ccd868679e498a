"""The delivery engine against real parts: a migrated SQLite or Postgres database and a
real HTTP receiver on 127.0.0.1 that verifies signatures with ``standardwebhooks``.
Host names resolve through a stub resolver (no network): ``hooks.test`` is allow-listed
by name and resolves to 127.0.0.1, so every request here also shows that the sender
connects to the checked address while keeping the URL's host name in ``Host``."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.api.webhook_receiver import Receiver, Reply
from tests.helpers import fresh_postgres
from ttc_cli.migrate import upgrade
from ttc_core.errors import InputError
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.models import Job, JobEvent, JobStatus, WebhookDelivery, WebhookSecret, utcnow
from ttc_core.webhooks import (
    attempt_delivery,
    check_webhook_url,
    delivery_log,
    enqueue_for_status,
    find_due_deliveries,
    policy_for,
    request_redelivery,
    set_waker,
)
from ttc_core.webhooks.local import LocalDeliverer
from ttc_core.webhooks.secret_store import current_secret, rotate_secret, signing_secrets
from ttc_core.webhooks.sender import pinned_request, send

QUESTION = "Natalia sold clips to 48 of her friends in April. How many?"


class StubDNS:
    """Resolves from a table that a test may change between calls (DNS rebinding)."""

    def __init__(self, **zone: str) -> None:
        self.zone = {"hooks.test": "127.0.0.1", **{k.replace("_", "."): v for k, v in zone.items()}}
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        if host not in self.zone:
            raise OSError(f"unknown host {host}")
        return [self.zone[host]]


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ttc.db'}"
        upgrade(url)
        yield Database(url)
    else:
        with fresh_postgres() as url:
            yield Database(url)


def make_settings(db: Database, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db.url,
        "webhook_allow_http": True,
        "webhook_allow_hosts": ["hooks.test"],
        "webhook_retry_schedule_s": [0, 0, 0],
        "webhook_timeout_s": 5.0,
        **kw,
    }
    return Settings(**values)


def finished_job(
    db: Database,
    settings: Settings,
    url: str,
    *,
    tenant: str = "acme",
    status: JobStatus = JobStatus.succeeded,
    events: list[str] | None = None,
    dns: StubDNS | None = None,
) -> str:
    """A job with a webhook, then finished the way the step loop finishes one."""
    webhook: dict[str, Any] = {"url": url}
    if events is not None:
        webhook["events"] = events
    spec = JobSpec.model_validate(
        {
            "strategy": "self_consistency",
            "endpoint": "sim",
            "prompt": QUESTION,
            "params": {"n": 2},
            "webhook": webhook,
        }
    )
    with db.transaction() as session:
        job = create_job(session, spec, settings, tenant=tenant, resolver=dns or StubDNS())
        job.status = status
        job.result = {"answer": "72", "score": 1.0, "correct": True, "ended_by": "strategy"}
        job.finished_at = utcnow()
        enqueue_for_status(session, job, settings)
        return job.id


def deliveries_of(db: Database, job_id: str) -> list[WebhookDelivery]:
    with db.session() as session:
        return list(
            session.scalars(select(WebhookDelivery).where(WebhookDelivery.job_id == job_id))
        )


def secret_of(db: Database, tenant: str) -> str:
    with db.transaction() as session:
        return current_secret(session, tenant).secret


def test_a_delivery_is_signed_pinned_and_verified_by_standardwebhooks(db: Database) -> None:
    settings = make_settings(db)
    with Receiver() as receiver:
        job_id = finished_job(db, settings, receiver.url(host="hooks.test"))
        (delivery,) = deliveries_of(db, job_id)
        dns = StubDNS()
        outcome = attempt_delivery(db, settings, delivery.id, resolver=dns)
        assert outcome.attempted and outcome.status == "delivered"
        assert outcome.retry_in() is None
        assert dns.calls == ["hooks.test"]  # resolved once, then connected to 127.0.0.1
        (request,) = receiver.received
    assert request.headers["host"] == f"hooks.test:{receiver.port}"
    assert request.headers["webhook-id"] == delivery.id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    payload = request.verify(secret_of(db, "acme"))
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["job_id"] == job_id
    assert payload["data"]["result"]["answer"] == "72"
    assert payload["data"]["usage"]["total_tokens"] == 0
    assert not request.verifies(secret_of(db, "someone-else"))


def test_503s_are_retried_on_schedule_and_logged(db: Database) -> None:
    settings = make_settings(db, webhook_retry_schedule_s=[0, 0, 0, 0])
    with Receiver([Reply(503), Reply(503)]) as receiver:
        job_id = finished_job(db, settings, receiver.url(host="hooks.test"))
        (delivery,) = deliveries_of(db, job_id)
        outcomes = [attempt_delivery(db, settings, delivery.id, resolver=StubDNS())]
        while outcomes[-1].retry_in() is not None:
            outcomes.append(attempt_delivery(db, settings, delivery.id, resolver=StubDNS()))
        assert [o.status for o in outcomes] == ["pending", "pending", "delivered"]
        ids = {r.headers["webhook-id"] for r in receiver.received}
        assert ids == {delivery.id}  # every retry carries the same webhook-id
    with db.session() as session:
        ((row, attempts),) = delivery_log(session, job_id)
    assert row.status == "delivered" and row.attempts == 3 and row.last_status_code == 200
    assert [a.status_code for a in attempts] == [503, 503, 200]
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert all(a.latency_ms is not None and a.latency_ms >= 0 for a in attempts)
    assert all(a.address == "127.0.0.1" for a in attempts)
    assert attempts[0].next_attempt_at is not None and attempts[2].next_attempt_at is None
    assert attempts[0].error == "receiver answered 503"


def test_after_the_last_attempt_the_delivery_is_exhausted_and_the_job_says_so(
    db: Database,
) -> None:
    settings = make_settings(db)
    with Receiver(default=Reply(500)) as receiver:
        job_id = finished_job(db, settings, receiver.url(host="hooks.test"))
        (delivery,) = deliveries_of(db, job_id)
        for _ in range(3):
            outcome = attempt_delivery(db, settings, delivery.id, resolver=StubDNS())
        assert outcome.status == "exhausted"
        # Further wake-ups do nothing.
        assert not attempt_delivery(db, settings, delivery.id, resolver=StubDNS()).attempted
        assert len(receiver.received) == 3
    with db.session() as session:
        event = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.kind == "webhook_exhausted")
        ).one()
    assert event.data["delivery_id"] == delivery.id
    assert event.data["attempts"] == 3 and event.data["last_status_code"] == 500


def test_a_redirect_is_a_failure_and_is_not_followed(db: Database) -> None:
    settings = make_settings(db)
    with Receiver() as inner, Receiver() as outer:
        outer.default = Reply(302, {"location": inner.url("/steal")})
        job_id = finished_job(db, settings, outer.url(host="hooks.test"))
        (delivery,) = deliveries_of(db, job_id)
        outcome = attempt_delivery(db, settings, delivery.id, resolver=StubDNS())
        assert outcome.status == "pending"
        assert len(outer.received) == 1
        assert inner.received == []  # the loopback target of the redirect got nothing
    with db.session() as session:
        ((_, (attempt,)),) = delivery_log(session, job_id)
    assert attempt.status_code == 302
    assert "redirect" in (attempt.error or "") and "not followed" in (attempt.error or "")


def test_a_slow_receiver_times_out_and_that_is_a_failure(db: Database) -> None:
    settings = make_settings(db, webhook_timeout_s=0.3)
    with Receiver([Reply(200, delay_s=2.0)]) as receiver:
        job_id = finished_job(db, settings, receiver.url(host="hooks.test"))
        (delivery,) = deliveries_of(db, job_id)
        outcome = attempt_delivery(db, settings, delivery.id, resolver=StubDNS())
    assert outcome.status == "pending"
    with db.session() as session:
        ((_, (attempt,)),) = delivery_log(session, job_id)
    assert attempt.status_code is None and "timeout" in (attempt.error or "")


def test_dns_rebinding_to_a_private_address_is_refused_at_delivery(db: Database) -> None:
    settings = make_settings(db, webhook_allow_hosts=[])
    dns = StubDNS(rebind_test="93.184.216.34")
    with Receiver() as receiver:
        # Public when submitted...
        check_webhook_url("http://rebind.test/", policy_for(settings), dns)
        job_id = finished_job(db, settings, f"http://rebind.test:{receiver.port}/hook", dns=dns)
        # ...loopback when sent: refused, nothing is sent anywhere.
        dns.zone["rebind.test"] = "127.0.0.1"
        (delivery,) = deliveries_of(db, job_id)
        outcome = attempt_delivery(db, settings, delivery.id, resolver=dns)
        assert outcome.status == "pending"
        assert receiver.received == []
    with db.session() as session:
        ((_, (attempt,)),) = delivery_log(session, job_id)
    assert "SSRF" in (attempt.error or "") and "loopback" in (attempt.error or "")
    assert attempt.address is None


def test_hostile_webhook_urls_are_refused_at_submission_and_write_nothing(db: Database) -> None:
    settings = make_settings(db, webhook_allow_hosts=[])
    dns = StubDNS(internal_test="10.0.0.7")
    for url in (
        "http://127.0.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://internal.test/",
    ):
        spec = JobSpec.model_validate(
            {
                "strategy": "self_consistency",
                "endpoint": "sim",
                "prompt": QUESTION,
                "webhook": {"url": url},
            }
        )
        with pytest.raises(InputError) as caught, db.transaction() as session:
            create_job(session, spec, settings, tenant="acme", resolver=dns)
        assert caught.value.field == "webhook.url", url
    with db.session() as session:
        assert session.scalars(select(Job)).all() == []


def test_duplicate_wake_ups_are_harmless_and_redelivery_keeps_the_id(db: Database) -> None:
    settings = make_settings(db, webhook_retry_schedule_s=[0, 3600])
    with Receiver([Reply(500)]) as receiver:
        job_id = finished_job(db, settings, receiver.url(host="hooks.test"))
        (delivery,) = deliveries_of(db, job_id)
        first = attempt_delivery(db, settings, delivery.id, resolver=StubDNS())
        retry_in = first.retry_in()
        assert retry_in is not None and 2800 < retry_in < 4400  # 3600 s ± 20%
        # A duplicate message before the retry is due does nothing, and is not followed up.
        duplicate = attempt_delivery(db, settings, delivery.id, resolver=StubDNS())
        assert not duplicate.attempted and duplicate.wake_again_in() is None
        assert first.wake_again_in() == pytest.approx(retry_in, abs=5)
        assert len(receiver.received) == 1
        # Redelivery: one more attempt now, same webhook-id.
        with db.transaction() as session:
            request_redelivery(session, job_id, delivery.id)
        second = attempt_delivery(db, settings, delivery.id, resolver=StubDNS())
        assert second.status == "delivered"
        assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.id] * 2
        secret = secret_of(db, "acme")
        assert all(r.verifies(secret) for r in receiver.received)
    with db.session() as session:
        ((_, attempts),) = delivery_log(session, job_id)
    assert [(a.attempt, a.manual) for a in attempts] == [(1, False), (2, True)]
    with db.transaction() as session, pytest.raises(Exception, match="no delivery"):
        request_redelivery(session, "another-job", delivery.id)


def test_rotation_signs_with_both_secrets_during_the_grace_period(db: Database) -> None:
    settings = make_settings(db)
    old = secret_of(db, "acme")
    with db.transaction() as session:
        new, previous = rotate_secret(session, "acme", grace_s=3600)
    assert new.secret != old and [p.secret for p in previous] == [old]
    with Receiver() as receiver:
        job_id = finished_job(db, settings, receiver.url(host="hooks.test"))
        (delivery,) = deliveries_of(db, job_id)
        attempt_delivery(db, settings, delivery.id, resolver=StubDNS())
        (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert request.verifies(old) and request.verifies(new.secret)
    # A rotation with no grace retires the current secret at once; the first one is
    # still in its hour of grace, and stops signing when that ends.
    with db.transaction() as session:
        newest, _ = rotate_secret(session, "acme", grace_s=0)
    with db.transaction() as session:
        assert signing_secrets(session, "acme") == [newest.secret, old]
        row = session.scalars(select(WebhookSecret).where(WebhookSecret.secret == old)).one()
        row.expires_at = utcnow() - dt.timedelta(seconds=1)
    with db.transaction() as session:
        assert signing_secrets(session, "acme") == [newest.secret]


def test_the_reaper_wakes_overdue_deliveries_once_per_interval(db: Database) -> None:
    settings = make_settings(db)
    job_id = finished_job(db, settings, "http://hooks.test:9/hook")
    (delivery,) = deliveries_of(db, job_id)
    assert find_due_deliveries(db, late_s=60) == []  # not late yet
    later = utcnow() + dt.timedelta(seconds=120)
    assert find_due_deliveries(db, late_s=60, now=later) == [delivery.id]
    assert find_due_deliveries(db, late_s=60, now=later) == []  # just woken
    again = later + dt.timedelta(seconds=61)
    assert find_due_deliveries(db, late_s=60, now=again) == [delivery.id]


def test_senders_are_woken_only_after_commit(db: Database) -> None:
    settings = make_settings(db)
    woken: list[str] = []
    previous = set_waker(woken.extend)
    try:
        job_id = finished_job(db, settings, "http://hooks.test:9/hook")
        assert woken == [d.id for d in deliveries_of(db, job_id)]
        with pytest.raises(RuntimeError), db.transaction() as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.status = JobStatus.cancelled
            enqueue_for_status(session, job, settings)
            raise RuntimeError("rolled back")
        assert len(woken) == 1  # the rolled-back delivery woke nothing
    finally:
        set_waker(previous)


def test_only_the_events_asked_for_are_sent_and_progress_is_throttled(db: Database) -> None:
    settings = make_settings(db, webhook_progress_interval_s=3600)
    job_id = finished_job(
        db, settings, "http://hooks.test:9/hook", events=["job.progress", "job.failed"]
    )
    assert deliveries_of(db, job_id) == []  # succeeded was not asked for
    with db.transaction() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.status = JobStatus.running
        enqueue_for_status(session, job, settings)
        enqueue_for_status(session, job, settings)  # within the interval: nothing more
        job.status = JobStatus.failed
        job.error = "boom"
        enqueue_for_status(session, job, settings)
    kinds = sorted(d.event for d in deliveries_of(db, job_id))
    assert kinds == ["job.failed", "job.progress"]
    failed = next(d for d in deliveries_of(db, job_id) if d.event == "job.failed")
    assert failed.payload["data"]["error"] == "boom"


def test_https_requests_go_to_the_checked_address_with_sni_and_host_of_the_name() -> None:
    dns = StubDNS(hooks_example_com="93.184.216.34")
    policy = policy_for(Settings(webhook_allow_hosts=[]))
    target = check_webhook_url("https://hooks.example.com:8443/a%20b?x=1", policy, dns)
    request = pinned_request(target, {"webhook-id": "msg_1"}, b"{}")
    assert request.url.host == "93.184.216.34" and request.url.port == 8443
    assert request.url.raw_path == b"/a%20b?x=1"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(307, headers={"location": "http://127.0.0.1/"})

    result = send(target, {}, b"{}", timeout_s=1, transport=httpx.MockTransport(handler))
    assert result.status_code == 307 and not result.ok and len(seen) == 1


def test_the_embedded_sender_retries_on_its_loop_and_picks_up_pending_work(
    db: Database,
) -> None:
    settings = make_settings(db, webhook_retry_schedule_s=[0, 0.2, 0.2])
    with Receiver([Reply(503)]) as receiver:
        job_id = finished_job(db, settings, receiver.url(host="hooks.test"))

        async def run() -> None:
            sender = LocalDeliverer(asyncio.get_running_loop(), db, settings, StubDNS())
            sender.wake_pending()  # as at start-up: the delivery was committed before
            deadline = time.monotonic() + 30
            while deliveries_of(db, job_id)[0].status != "delivered":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            await sender.aclose()

        asyncio.run(run())
        assert [r.headers["webhook-id"] for r in receiver.received] == [
            deliveries_of(db, job_id)[0].id
        ] * 2
