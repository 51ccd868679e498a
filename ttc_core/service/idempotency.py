"""``Idempotency-Key`` for job submission (draft-ietf-httpapi-idempotency-key-header).

A key is scoped to the calling tenant and remembered for ``idempotency_ttl_s``:

- the first request inserts an ``in_progress`` row in its own committed transaction
  (the primary key ``(tenant, key)`` makes concurrent duplicates collide in the database),
  then creates the job and marks the row ``done`` with the response in one transaction;
- a repeat with the same body gets the stored response again (the caller adds
  ``Idempotent-Replayed: true``);
- a repeat with a different body is refused (422), and a repeat while the first is still
  being created gets 409;
- an expired row, or an ``in_progress`` row left behind by a crashed process, is
  replaced by the next request that uses the key.

The fingerprint is the SHA-256 of the canonical JSON (sorted keys, no spaces) of the
validated body, so key order and spacing do not matter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import random
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Delete, and_, delete, or_, select, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from ttc_core.errors import ConflictError, InputError
from ttc_core.store.db import Database
from ttc_core.store.models import IdempotencyKey, IdempotencyState, utcnow

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
#: An ``in_progress`` row older than this belongs to a request that died (creating a job
#: is one short transaction); the next request with the key takes it over.
STALE_IN_PROGRESS = dt.timedelta(seconds=60)
_KEY_RE = re.compile(r"^[\x20-\x7e]+$")
#: One claim in this many also deletes a batch of expired keys (lazy garbage collection).
PURGE_EVERY = 100
PURGE_BATCH = 500


@dataclass(frozen=True)
class Replay:
    """The stored response of the request that first used the key."""

    status: int
    body: dict[str, Any]


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not _KEY_RE.match(key):
        raise InputError(
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters", field=HEADER
        )
    return key


def fingerprint(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def claim(db: Database, tenant: str, key: str, print_: str, ttl_s: float) -> Replay | None:
    """Own the key (None: go ahead and create the job) or learn what happened to it.

    Raises InputError (422) for a different body, ConflictError (409) while the first
    request is still creating its job."""
    for _ in range(3):
        now = utcnow()
        try:
            with db.transaction() as session:
                session.add(
                    IdempotencyKey(
                        tenant=tenant,
                        key=key,
                        fingerprint=print_,
                        state=IdempotencyState.in_progress,
                        created_at=now,
                        expires_at=now + dt.timedelta(seconds=ttl_s),
                    )
                )
            if random.random() < 1 / PURGE_EVERY:
                purge_expired(db)
            return None
        except IntegrityError:
            pass
        with db.transaction() as session:
            row = session.get(IdempotencyKey, (tenant, key))
            if row is None:
                continue  # removed since our insert failed: try again
            expired = _aware(row.expires_at) <= now
            abandoned = (
                row.state == IdempotencyState.in_progress
                and _aware(row.created_at) < now - STALE_IN_PROGRESS
            )
            if expired or abandoned:
                # Conditional delete: of two requests replacing one row, one wins.
                session.execute(_replaceable(tenant, key, now))
                continue
            if row.fingerprint != print_:
                raise InputError(
                    f"this {HEADER} was used with a different request body", field=HEADER
                )
            if row.state == IdempotencyState.in_progress or row.response_body is None:
                raise ConflictError(
                    f"a request with this {HEADER} is still being processed; retry shortly"
                )
            return Replay(status=row.response_status or 202, body=dict(row.response_body))
    raise ConflictError(f"this {HEADER} is contended; retry shortly")


def _replaceable(tenant: str, key: str, now: dt.datetime) -> Delete:
    return (
        delete(IdempotencyKey)
        .where(
            IdempotencyKey.tenant == tenant,
            IdempotencyKey.key == key,
            or_(
                IdempotencyKey.expires_at <= now,
                and_(
                    IdempotencyKey.state == IdempotencyState.in_progress,
                    IdempotencyKey.created_at < now - STALE_IN_PROGRESS,
                ),
            ),
        )
        .execution_options(synchronize_session=False)
    )


def finish(
    session: Session, tenant: str, key: str, *, job_id: str, status: int, body: dict[str, Any]
) -> None:
    """Record the response; call in the transaction that creates the job, so that the
    job and its key commit together."""
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.tenant == tenant, IdempotencyKey.key == key)
        .values(
            state=IdempotencyState.done, job_id=job_id, response_status=status, response_body=body
        )
        .execution_options(synchronize_session=False)
    )


def release(db: Database, tenant: str, key: str) -> None:
    """Free the key after the first request failed (invalid body, over a limit), so the
    client may retry with it."""
    with db.transaction() as session:
        session.execute(
            delete(IdempotencyKey)
            .where(
                IdempotencyKey.tenant == tenant,
                IdempotencyKey.key == key,
                IdempotencyKey.state == IdempotencyState.in_progress,
            )
            .execution_options(synchronize_session=False)
        )


def purge_expired(db: Database, limit: int = PURGE_BATCH) -> int:
    """Delete up to ``limit`` expired keys; returns how many. Best effort: a failure
    (say, a deadlock with a concurrent purge) is logged and left for the next one."""
    expired = (
        select(IdempotencyKey.tenant, IdempotencyKey.key)
        .where(IdempotencyKey.expires_at <= utcnow())
        .order_by(IdempotencyKey.expires_at)
        .limit(limit)
    )
    try:
        with db.transaction() as session:
            result = session.execute(
                delete(IdempotencyKey)
                .where(tuple_(IdempotencyKey.tenant, IdempotencyKey.key).in_(expired))
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0)
    except DBAPIError as exc:
        log.info("purging expired idempotency keys failed, later then: %s", exc)
        return 0
