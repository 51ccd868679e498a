"""The expansion cache across jobs: generated samples, content-addressed.

A sample is a function of what was asked: the endpoint, the model, the request as ttc
sends it (messages or prompt, the path it continues, stop strings, sampling parameters,
reasoning controls) and the sample's seed. :func:`sample_key` hashes exactly those, so a
change of any part misses; ``n`` is not part of it, because choice i of a request seeded
s is the sample of seed s + i (``ttc_core.inference.client``): a job of 8 samples is
served by the first 8 of an earlier job's 16.

Entries live in the database (table ``expansion_cache``), not in Redis:

- embedded mode (SQLite, no Redis) gets the same cache as the service;
- every worker sees every entry, and an entry survives a broker restart or flush;
- the stack's Redis is the Celery broker, whose memory policy must never evict a message
  (``deploy/redis.conf``): an evicting cache has no place there;
- an entry is the size of the node it becomes, and nodes already live in the database.

A lookup is one indexed ``SELECT`` per request, small beside an inference request.

Scope: a tenant's jobs see only their tenant's entries (``scope`` = the tenant); an
operator who trusts every tenant shares them (``expansion_cache_scope=shared``, scope
``*``). Eviction (:func:`evict`, run by the reaper's sweep) drops entries unused for
``expansion_cache_max_age_s``, then the least recently used beyond
``expansion_cache_max_entries`` (every ``expansion_cache_sweep_s``; in embedded mode when
the executor starts).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from ttc_core.inference import GenerationRequest
from ttc_core.observability import metrics
from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.models import ExpansionCacheEntry, utcnow
from ttc_core.store.queries import insert_cache_entries

__all__ = [
    "SHARED_SCOPE",
    "CacheMode",
    "CachedSample",
    "Evicted",
    "entry_rows",
    "evict",
    "fingerprint",
    "lookup",
    "request_body",
    "request_id",
    "sample_key",
    "scope_of",
    "store",
    "sweep",
]

log = logging.getLogger(__name__)

#: The scope of every entry when the operator shares the cache across tenants.
SHARED_SCOPE = "*"


class CacheMode(enum.StrEnum):
    """What a job does with the cache (``jobs.cache``)."""

    #: Served from the cache where it can, and what it generates is stored: the default
    #: of a job submitted with a ``seed`` (nothing else can ask for the same samples).
    use = "use"
    #: Generates everything, and stores it (a replay: it checks the server, not the cache).
    refresh = "refresh"
    #: Neither reads nor writes: the default of a job without a ``seed``.
    off = "off"

    @property
    def reads(self) -> bool:
        return self is CacheMode.use

    @property
    def writes(self) -> bool:
        return self is not CacheMode.off


def request_body(req: GenerationRequest) -> dict[str, Any]:
    """The request's fields but ``n`` and ``seed`` (those are per sample), as stored in
    ``generation_requests.body`` and hashed into the key."""
    return {
        "messages": [dict(m) for m in req.messages] if req.messages is not None else None,
        "prompt": req.prompt,
        "continue_text": req.continue_text,
        "stop": list(req.stop) if req.stop is not None else None,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_tokens,
        "extra_body": req.extra_body,
    }


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def fingerprint(endpoint: str, model: str, body: Mapping[str, Any]) -> str:
    """What a request asks of which server and model, hashed (the key less the seed)."""
    return _digest({"endpoint": endpoint, "model": model, "request": dict(body)})


def sample_key(request_fingerprint: str, seed: int) -> str:
    """The cache key of the sample of ``seed`` of a request."""
    return _digest({"request": request_fingerprint, "seed": seed})


def request_id(job_id: str, request_fingerprint: str) -> str:
    """``generation_requests.id``: one row per distinct request of a job."""
    return _digest({"job": job_id, "request": request_fingerprint})


def scope_of(tenant: str, settings: Settings) -> str:
    return SHARED_SCOPE if settings.expansion_cache_scope == "shared" else tenant


@dataclass(frozen=True, slots=True)
class CachedSample:
    """What the cache keeps of one sample: what its node needs."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    notes: dict[str, Any] | None = None


def lookup(conn: Connection, scope: str, keys: Iterable[str]) -> dict[str, CachedSample]:
    """The entries of ``keys`` that ``scope`` has (marking them used now)."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    table = ExpansionCacheEntry
    rows = conn.execute(
        select(
            table.key,
            table.text,
            table.finish_reason,
            table.prompt_tokens,
            table.completion_tokens,
            table.notes,
        ).where(table.scope == scope, table.key.in_(wanted))
    ).all()
    found = {
        row.key: CachedSample(
            row.text, row.finish_reason, row.prompt_tokens, row.completion_tokens, row.notes
        )
        for row in rows
    }
    if found:
        _touch(conn, scope, sorted(found))
    return found


#: An entry's ``used_at`` is moved only when older than this: eviction's recency needs no
#: finer grain, and a hot entry is not rewritten by every job that reads it.
TOUCH_RESOLUTION_S = 60.0


def _touch(conn: Connection, scope: str, keys: list[str]) -> None:
    """Mark entries used now. Rows another transaction holds are skipped, not waited for
    (``SKIP LOCKED``): concurrent jobs reading overlapping entries never deadlock, and a
    skipped entry was just touched by the other reader anyway (SQLite has no row locks)."""
    now = utcnow()
    table = ExpansionCacheEntry
    stale = (
        select(table.key)
        .where(
            table.scope == scope,
            table.key.in_(keys),
            table.used_at < now - dt.timedelta(seconds=TOUCH_RESOLUTION_S),
        )
        .with_for_update(skip_locked=True)
    )
    conn.execute(
        update(table).where(table.scope == scope, table.key.in_(stale)).values(used_at=now)
    )


def entry_rows(
    scope: str, endpoint: str, samples: Mapping[str, CachedSample]
) -> list[dict[str, Any]]:
    """``expansion_cache`` rows of ``samples`` by key, for :func:`store` or a caller's own
    transaction (``ttc_core.store.queries.insert_cache_entries``), in key order."""
    now = utcnow()
    return [
        {
            "scope": scope,
            "key": key,
            "endpoint": endpoint,
            "text": sample.text,
            "finish_reason": sample.finish_reason,
            "prompt_tokens": sample.prompt_tokens,
            "completion_tokens": sample.completion_tokens,
            "notes": sample.notes,
            "created_at": now,
            "used_at": now,
        }
        for key, sample in sorted(samples.items())
    ]


def store(conn: Connection, scope: str, endpoint: str, samples: Mapping[str, CachedSample]) -> None:
    """Keep ``samples`` by key; an entry already there (another job's) stays as it is."""
    insert_cache_entries(conn, entry_rows(scope, endpoint, samples))


@dataclass(frozen=True, slots=True)
class Evicted:
    by_age: int
    by_size: int


def evict(conn: Connection, settings: Settings, now: dt.datetime | None = None) -> Evicted:
    """Drop entries unused for ``expansion_cache_max_age_s``, then the least recently
    used beyond ``expansion_cache_max_entries``."""
    table = ExpansionCacheEntry
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=settings.expansion_cache_max_age_s)
    by_age = conn.execute(delete(table).where(table.used_at < cutoff)).rowcount or 0
    by_size = 0
    count = conn.execute(select(func.count()).select_from(ExpansionCacheEntry)).scalar_one()
    excess = count - settings.expansion_cache_max_entries
    if excess > 0:
        # The newest entry that goes: it and everything used before it (ties go too).
        last_out = conn.execute(
            select(table.used_at).order_by(table.used_at).offset(excess - 1).limit(1)
        ).scalar_one()
        by_size = conn.execute(delete(table).where(table.used_at <= last_out)).rowcount or 0
    return Evicted(by_age, by_size)


def sweep(db: Database, settings: Settings) -> Evicted:
    """One eviction pass in its own transaction, counted in the metrics."""
    with db.engine.begin() as conn:
        evicted = evict(conn, settings)
    metrics.cache_evicted(by_age=evicted.by_age, by_size=evicted.by_size)
    if evicted.by_age or evicted.by_size:
        log.info(
            "expansion cache: %d entries evicted by age, %d by size",
            evicted.by_age,
            evicted.by_size,
        )
    return evicted
