"""The pieces behind ``POST /v1/jobs`` on their own, on SQLite (embedded mode's database):
the idempotency table's states and the in-process submission rate."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from ttc_cli.migrate import upgrade
from ttc_core.errors import ConflictError, InputError
from ttc_core.service import idempotency
from ttc_core.service.tenant_limits import LocalSubmissionRate
from ttc_core.store.db import Database
from ttc_core.store.models import IdempotencyKey, IdempotencyState, utcnow


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'idem.db'}"
    upgrade(url)
    yield Database(url)


def test_fingerprint_ignores_key_order_only() -> None:
    a = idempotency.fingerprint({"x": 1, "y": [1, 2], "z": {"b": 1, "a": 2}})
    b = idempotency.fingerprint({"z": {"a": 2, "b": 1}, "y": [1, 2], "x": 1})
    assert a == b
    assert a != idempotency.fingerprint({"x": 1, "y": [2, 1], "z": {"b": 1, "a": 2}})


def test_claim_finish_replay_mismatch_and_conflict(db: Database) -> None:
    fp = idempotency.fingerprint({"n": 1})
    assert idempotency.claim(db, "t", "k", fp, 60) is None  # ours
    with pytest.raises(ConflictError):
        idempotency.claim(db, "t", "k", fp, 60)  # still in progress
    with pytest.raises(InputError) as err:
        idempotency.claim(db, "t", "k", idempotency.fingerprint({"n": 2}), 60)
    assert err.value.field == "Idempotency-Key"
    with db.transaction() as session:
        idempotency.finish(session, "t", "k", job_id="j1", status=202, body={"id": "j1"})
    replay = idempotency.claim(db, "t", "k", fp, 60)
    assert replay == idempotency.Replay(status=202, body={"id": "j1"})
    # Another tenant's key of the same name is a different key.
    assert idempotency.claim(db, "u", "k", fp, 60) is None


def test_release_frees_an_unfinished_key_only(db: Database) -> None:
    fp = idempotency.fingerprint({})
    assert idempotency.claim(db, "t", "a", fp, 60) is None
    idempotency.release(db, "t", "a")
    assert idempotency.claim(db, "t", "a", fp, 60) is None  # free again
    with db.transaction() as session:
        idempotency.finish(session, "t", "a", job_id="j", status=202, body={"id": "j"})
    idempotency.release(db, "t", "a")  # a finished key stays
    assert idempotency.claim(db, "t", "a", fp, 60) is not None


def test_expired_and_abandoned_keys_are_replaced(db: Database) -> None:
    now = utcnow()
    with db.transaction() as session:
        session.add_all(
            [
                IdempotencyKey(
                    tenant="t",
                    key="old",
                    fingerprint="x" * 64,
                    state=IdempotencyState.done,
                    response_status=202,
                    response_body={"id": "gone"},
                    created_at=now - dt.timedelta(days=2),
                    expires_at=now - dt.timedelta(days=1),
                ),
                IdempotencyKey(
                    tenant="t",
                    key="dead",
                    fingerprint="x" * 64,
                    state=IdempotencyState.in_progress,
                    created_at=now - idempotency.STALE_IN_PROGRESS * 2,
                    expires_at=now + dt.timedelta(days=1),
                ),
            ]
        )
    fp = idempotency.fingerprint({"new": True})
    assert idempotency.claim(db, "t", "old", fp, 60) is None
    assert idempotency.claim(db, "t", "dead", fp, 60) is None


def test_key_format_is_checked() -> None:
    assert idempotency.check_key("a" * 255) == "a" * 255
    for bad in ("", "a" * 256, "new\nline", "caf\u00e9"):
        with pytest.raises(InputError):
            idempotency.check_key(bad)


def test_local_rate_gives_a_burst_then_a_wait() -> None:
    rate = LocalSubmissionRate()
    # 60 a minute: ten seconds' worth (10) at once, then about a second per token.
    taken = [rate.try_take("t", 60.0) for _ in range(10)]
    assert taken == [0.0] * 10
    wait = rate.try_take("t", 60.0)
    assert 0.0 < wait <= 1.0
    assert rate.try_take("other", 60.0) == 0.0  # tenants have separate buckets


def test_expired_keys_are_purged(db: Database) -> None:
    now = utcnow()
    with db.transaction() as session:
        for i in range(5):
            session.add(
                IdempotencyKey(
                    tenant="t",
                    key=f"k{i}",
                    fingerprint="x" * 64,
                    state=IdempotencyState.done,
                    created_at=now - dt.timedelta(days=2),
                    # Three expired, two live.
                    expires_at=now + dt.timedelta(hours=1 if i >= 3 else -1),
                )
            )
    assert idempotency.purge_expired(db, limit=2) == 2
    assert idempotency.purge_expired(db) == 1
    assert idempotency.purge_expired(db) == 0
    with db.session() as session:
        left = sorted(session.scalars(select(IdempotencyKey.key)))
    assert left == ["k3", "k4"]
