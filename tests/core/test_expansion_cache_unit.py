"""The expansion cache's key and eviction: a change of any part of the key misses (and
nothing else does); entries go by age and, beyond the size bound, least recently used
first. SQLite with migrations applied, no server."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select, update

from ttc_cli.migrate import upgrade
from ttc_core.inference import GenerationRequest
from ttc_core.settings import Settings
from ttc_core.store import expansion_cache
from ttc_core.store.db import Database
from ttc_core.store.expansion_cache import CachedSample, evict, lookup, sample_key, store
from ttc_core.store.models import ExpansionCacheEntry, utcnow

BASE = GenerationRequest(
    n=4,
    messages=[{"role": "user", "content": "What is 2 + 2?"}],
    prompt="What is 2 + 2?",
    seed=10,
    temperature=0.8,
    top_p=0.95,
    max_tokens=256,
    stop=["\n\n"],
    extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    continue_text="Step 1: add.\n\n",
)


def key_of(req: GenerationRequest, endpoint: str = "sim", model: str = "m", offset: int = 0) -> str:
    body = expansion_cache.request_body(req)
    assert req.seed is not None
    return sample_key(expansion_cache.fingerprint(endpoint, model, body), req.seed + offset)


CHANGES: dict[str, dict[str, Any]] = {
    "messages": {"messages": [{"role": "user", "content": "What is 2 + 3?"}]},
    "message role": {"messages": [{"role": "system", "content": "What is 2 + 2?"}]},
    "prompt": {"prompt": "What is 2 + 2 ?"},
    "path continued": {"continue_text": "Step 1: sum.\n\n"},
    "no path": {"continue_text": None},
    "stop": {"stop": ["\n"]},
    "temperature": {"temperature": 0.7},
    "top_p": {"top_p": 1.0},
    "max_tokens": {"max_tokens": 255},
    "reasoning controls": {"extra_body": {"chat_template_kwargs": {"enable_thinking": True}}},
    "seed": {"seed": 11},
}


def test_the_key_is_stable_and_n_is_no_part_of_it() -> None:
    assert key_of(BASE) == key_of(dataclasses.replace(BASE))
    # Sample i of a request seeded s is the sample of seed s + i, whatever n is.
    assert key_of(dataclasses.replace(BASE, n=16)) == key_of(BASE)
    assert key_of(BASE, offset=1) == key_of(dataclasses.replace(BASE, seed=11, n=1))


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_of_any_part_of_the_request_misses(change: str) -> None:
    assert key_of(dataclasses.replace(BASE, **CHANGES[change])) != key_of(BASE)


def test_a_change_of_endpoint_or_model_misses() -> None:
    assert key_of(BASE, endpoint="sim-2") != key_of(BASE)
    assert key_of(BASE, model="m;step_accuracy=0.3") != key_of(BASE)
    # No ambiguity between the parts: moving text from one field to another changes it.
    assert key_of(BASE, endpoint="sim", model="m") != key_of(BASE, endpoint="simm", model="")


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[Connection]:
    url = f"sqlite:///{tmp_path / 'ttc.db'}"
    upgrade(url)
    with Database(url).engine.begin() as connection:
        yield connection


def sample(text: str) -> CachedSample:
    return CachedSample(text, "stop", 5, len(text), None)


def test_entries_are_scoped_and_never_overwritten(conn: Connection) -> None:
    store(conn, "tenant-a", "sim", {"k1": sample("first")})
    store(conn, "tenant-a", "sim", {"k1": sample("second"), "k2": sample("two")})
    assert lookup(conn, "tenant-a", ["k1", "k2", "k3"]) == {
        "k1": sample("first"),
        "k2": sample("two"),
    }
    assert lookup(conn, "tenant-b", ["k1", "k2"]) == {}
    settings = Settings(expansion_cache_scope="shared")
    assert expansion_cache.scope_of("tenant-b", settings) == expansion_cache.SHARED_SCOPE
    assert expansion_cache.scope_of("tenant-b", Settings()) == "tenant-b"


def _age(conn: Connection, key: str, seconds: float) -> None:
    conn.execute(
        update(ExpansionCacheEntry)
        .where(ExpansionCacheEntry.key == key)
        .values(used_at=utcnow() - dt.timedelta(seconds=seconds))
    )


def _keys(conn: Connection) -> set[str]:
    return set(conn.execute(select(ExpansionCacheEntry.key)).scalars())


def test_eviction_by_age(conn: Connection) -> None:
    store(conn, "t", "sim", {k: sample(k) for k in ("old", "recent", "new")})
    _age(conn, "old", 7200)
    _age(conn, "recent", 1800)
    evicted = evict(conn, Settings(expansion_cache_max_age_s=3600))
    assert (evicted.by_age, evicted.by_size) == (1, 0)
    assert _keys(conn) == {"recent", "new"}


def test_eviction_by_size_drops_the_least_recently_used(conn: Connection) -> None:
    store(conn, "t", "sim", {f"k{i}": sample(str(i)) for i in range(6)})
    for i in range(6):
        _age(conn, f"k{i}", 600 - i * 60)  # k0 the least recently used ... k5 the most
    lookup(conn, "t", ["k0"])  # a hit: k0 becomes the most recently used
    evicted = evict(conn, Settings(expansion_cache_max_entries=3))
    assert (evicted.by_age, evicted.by_size) == (0, 3)
    assert _keys(conn) == {"k0", "k4", "k5"}
    assert evict(conn, Settings(expansion_cache_max_entries=3)) == expansion_cache.Evicted(0, 0)


def test_readers_of_the_same_entries_never_wait_for_each_other() -> None:
    """Two jobs reading overlapping entries at once (neighbouring seeds share samples):
    the second is not blocked by the first's row locks, so they cannot deadlock."""
    from sqlalchemy import text

    from tests.helpers import fresh_postgres

    with fresh_postgres() as url:
        upgrade(url)
        db = Database(url)
        with db.engine.begin() as conn:
            store(conn, "t", "sim", {f"k{i}": sample(str(i)) for i in range(4)})
            for i in range(4):
                _age(conn, f"k{i}", 3600)
        with db.engine.connect() as first, db.engine.connect() as second, first.begin():
            assert len(lookup(first, "t", ["k0", "k1", "k2"])) == 3  # holds k0..k2
            with second.begin():
                second.execute(text("SET LOCAL lock_timeout = '2s'"))
                # k3 is touched, k0..k2 skipped (the first reader just touched them).
                assert len(lookup(second, "t", ["k2", "k1", "k0", "k3"])) == 4
        db.engine.dispose()
