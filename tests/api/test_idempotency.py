"""``Idempotency-Key`` on ``POST /v1/jobs``: same key and body, same job; a different
body, 422; while the first request is in progress, 409; concurrent duplicates make one
job."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiStack, job_body
from ttc_core.service.idempotency import fingerprint
from ttc_core.store.db import Database
from ttc_core.store.models import IdempotencyKey, IdempotencyState, utcnow

pytestmark = pytest.mark.integration


def _post(client: httpx.Client, key: str, body: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})


def _job_ids(client: httpx.Client) -> list[str]:
    return [j["id"] for j in client.get("/v1/jobs", params={"limit": 200}).json()["data"]]


def test_same_key_and_body_is_the_same_job(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    key = str(uuid.uuid4())
    first = _post(client, key, job_body())
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    # The same body with its keys in another order is the same request.
    again = _post(client, key, dict(reversed(list(job_body().items()))))
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert _job_ids(client) == [first.json()["id"]]


def test_same_key_different_body_is_422(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    key = str(uuid.uuid4())
    assert _post(client, key, job_body()).status_code == 202
    resp = _post(client, key, job_body(params={"n": 3, "max_tokens": 64}))
    assert resp.status_code == 422
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["field"] == "Idempotency-Key"
    assert len(_job_ids(client)) == 1


def _insert_key(
    stack: ApiStack,
    tenant: str,
    key: str,
    *,
    body: dict[str, Any],
    state: IdempotencyState,
    created_ago: dt.timedelta = dt.timedelta(0),
    expires_in: dt.timedelta = dt.timedelta(hours=1),
) -> None:
    """Put a key's row in the database as another API process would have left it."""
    now = utcnow()
    with Database(stack.database_url).transaction() as session:
        session.add(
            IdempotencyKey(
                tenant=tenant,
                key=key,
                fingerprint=fingerprint(body),
                state=state,
                created_at=now - created_ago,
                expires_at=now + expires_in,
            )
        )


def _canonical(body: dict[str, Any]) -> dict[str, Any]:
    """The body as the API fingerprints it (validated, defaults filled in)."""
    from ttc_api.submit import JobCreate

    return JobCreate.model_validate(body).model_dump(mode="json")


def test_key_in_progress_is_409_until_it_is_abandoned(api_stack: ApiStack) -> None:
    tenant, client, _ = api_stack.tenant_client()
    body = job_body()
    key = str(uuid.uuid4())
    # Another process claimed the key a moment ago and is still creating the job.
    _insert_key(api_stack, tenant, key, body=_canonical(body), state=IdempotencyState.in_progress)
    resp = _post(client, key, body)
    assert resp.status_code == 409, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert _job_ids(client) == []
    # A claim two minutes old belongs to a process that died: the next request takes over.
    stale = str(uuid.uuid4())
    _insert_key(
        api_stack,
        tenant,
        stale,
        body=_canonical(body),
        state=IdempotencyState.in_progress,
        created_ago=dt.timedelta(minutes=2),
    )
    taken = _post(client, stale, body)
    assert taken.status_code == 202, taken.text
    assert _job_ids(client) == [taken.json()["id"]]


def test_expired_key_is_forgotten(api_stack: ApiStack) -> None:
    tenant, client, _ = api_stack.tenant_client()
    key = str(uuid.uuid4())
    _insert_key(
        api_stack,
        tenant,
        key,
        body={"something": "else"},
        state=IdempotencyState.done,
        created_ago=dt.timedelta(days=2),
        expires_in=-dt.timedelta(days=1),
    )
    resp = _post(client, key, job_body())  # a different body, but the old use expired
    assert resp.status_code == 202, resp.text
    assert "idempotent-replayed" not in resp.headers
    assert _post(client, key, job_body()).headers["idempotent-replayed"] == "true"


def test_concurrent_duplicates_make_one_job(api_stack: ApiStack) -> None:
    _, client, _ = api_stack.tenant_client()
    key = str(uuid.uuid4())
    barrier = threading.Barrier(8)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def post() -> None:
        barrier.wait()
        resp = _post(client, key, job_body())
        with lock:
            answers.append(resp)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 8
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {202, 409}, statuses
    accepted = {r.json()["id"] for r in answers if r.status_code == 202}
    assert len(accepted) == 1, statuses
    fresh = [r for r in answers if r.status_code == 202 and "idempotent-replayed" not in r.headers]
    assert len(fresh) == 1
    assert _job_ids(client) == list(accepted)
    # Once the first is done, every repeat is a replay of it.
    assert _post(client, key, job_body()).json()["id"] in accepted


def test_keys_are_per_tenant_and_freed_by_a_failed_request(api_stack: ApiStack) -> None:
    _, alice, _ = api_stack.tenant_client()
    _, bob, _ = api_stack.tenant_client()
    key = str(uuid.uuid4())
    a = _post(alice, key, job_body())
    b = _post(bob, key, job_body())
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]
    assert "idempotent-replayed" not in b.headers

    # A refused request (an unknown strategy) leaves its key free for the corrected one.
    retry_key = str(uuid.uuid4())
    bad = _post(alice, retry_key, job_body(strategy="no_such_strategy"))
    assert bad.status_code == 422 and bad.json()["field"] == "strategy"
    good = _post(alice, retry_key, job_body())
    assert good.status_code == 202
    assert "idempotent-replayed" not in good.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
def test_bad_keys_are_refused(api_stack: ApiStack, key: str) -> None:
    _, client, _ = api_stack.tenant_client()
    # Sent as UTF-8 bytes (httpx refuses non-ASCII str headers).
    resp = client.post("/v1/jobs", json=job_body(), headers=[(b"Idempotency-Key", key.encode())])
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "Idempotency-Key"
    assert _job_ids(client) == []
