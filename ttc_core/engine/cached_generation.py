"""Generation through the expansion cache (``ttc_core.store.expansion_cache``).

One request of an expansion (``n`` samples seeded ``seed``, ``seed + 1``, ...) becomes: its
samples' keys, looked up with the rest of its batch's (one query a batch); one request
for each run of samples the cache lacks (seeded as they would have been: choice i of a
request seeded s is the sample of seed s + i); and, for a job that writes the cache, the
new samples' entries, stored in the transaction that saves their nodes (no extra round
trip). A request the cache serves
whole is never sent. Every request also yields its record (``generation_requests``),
what reproduces its nodes, whether or not the cache is used.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

from ttc_core.engine.runtime import EngineContext
from ttc_core.inference import Choice, Generation, GenerationRequest, InferenceClient, ledger
from ttc_core.inference.client import gather_paid
from ttc_core.observability import metrics
from ttc_core.store import expansion_cache
from ttc_core.store.expansion_cache import CachedSample, CacheMode
from ttc_core.store.models import Job, utcnow

__all__ = ["BatchCache", "Served", "cache_mode", "generate", "open_batch", "request_record"]


@dataclass(frozen=True, slots=True)
class Served:
    generation: Generation
    #: Per choice: served by the cache (not paid for by this job).
    cached: list[bool]
    #: ``expansion_cache`` rows of the samples generated, to store with their nodes.
    entries: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class BatchCache:
    """What one expansion batch may take from the cache: looked up once for all of its
    requests (one query per batch, not per request)."""

    mode: CacheMode
    scope: str
    endpoint: str
    hits: dict[str, CachedSample]


def cache_mode(job: Job, ctx: EngineContext) -> CacheMode:
    """The job's mode, unless the operator turned the cache off."""
    if not ctx.settings.expansion_cache_enabled:
        return CacheMode.off
    return CacheMode(job.cache or CacheMode.off)


def request_record(job: Job, client: InferenceClient, req: GenerationRequest) -> dict[str, Any]:
    body = expansion_cache.request_body(req)
    model = client.endpoint.model
    fingerprint = expansion_cache.fingerprint(client.name, model, body)
    return {
        "id": expansion_cache.request_id(job.id, fingerprint),
        "job_id": job.id,
        "endpoint": client.name,
        "model": model,
        "body": body,
        "fingerprint": fingerprint,
        "created_at": utcnow(),
    }


def _keys(req: GenerationRequest, fingerprint: str) -> list[str]:
    if req.seed is None:
        return []
    return [expansion_cache.sample_key(fingerprint, req.seed + i) for i in range(req.n)]


async def open_batch(
    ctx: EngineContext,
    job: Job,
    client: InferenceClient,
    requests: list[tuple[GenerationRequest, str]],
) -> BatchCache:
    """The cache's entries for a batch's ``(request, fingerprint)`` pairs, if the job
    reads it."""
    mode = cache_mode(job, ctx)
    scope = expansion_cache.scope_of(job.tenant, ctx.settings)
    keys = [key for req, fingerprint in requests for key in _keys(req, fingerprint)]
    if not (mode.reads and keys):
        return BatchCache(mode, scope, client.name, {})

    def read() -> dict[str, CachedSample]:
        with ctx.db.engine.begin() as conn:
            return expansion_cache.lookup(conn, scope, keys)

    hits = await asyncio.to_thread(read)
    metrics.cache_lookups(client.name, hits=len(hits), misses=len(keys) - len(hits))
    return BatchCache(mode, scope, client.name, hits)


def _gaps(found: list[bool]) -> list[tuple[int, int]]:
    """``(start, k)`` of each run of samples not found."""
    gaps: list[tuple[int, int]] = []
    for i, hit in enumerate(found):
        if hit:
            continue
        if gaps and gaps[-1][0] + gaps[-1][1] == i:
            gaps[-1] = (gaps[-1][0], gaps[-1][1] + 1)
        else:
            gaps.append((i, 1))
    return gaps


async def generate(
    client: InferenceClient, req: GenerationRequest, fingerprint: str, cache: BatchCache
) -> Served:
    """``req``'s samples: those ``cache`` holds, and the rest generated (to be stored with
    their nodes when the job writes the cache)."""
    if req.seed is None or cache.mode is CacheMode.off:  # an unseeded sample is no one's
        generation = await client.generate(req)
        return Served(generation, [False] * len(generation.choices), [])
    seed = req.seed
    keys = _keys(req, fingerprint)
    choices: list[Choice | None] = [None] * req.n
    for i, key in enumerate(keys):
        if (sample := cache.hits.get(key)) is not None:
            choices[i] = Choice(
                i,
                sample.text,
                sample.finish_reason,
                sample.prompt_tokens,
                sample.completion_tokens,
                0.0,
                seed + i,
                sample.notes,
            )
    gaps = _gaps([c is not None for c in choices])
    generations = await gather_paid(
        [client.generate(dataclasses.replace(req, n=k, seed=seed + start)) for start, k in gaps]
    )
    fresh: dict[str, CachedSample] = {}
    for (start, _), generation in zip(gaps, generations, strict=True):
        for choice in generation.choices:
            index = start + choice.index
            choices[index] = dataclasses.replace(choice, index=index)
            fresh[keys[index]] = CachedSample(
                choice.text,
                choice.finish_reason,
                choice.prompt_tokens,
                choice.completion_tokens,
                choice.notes,
            )
    if not gaps:
        # What the job would have sent for these samples (the client's n per request).
        ledger.record_cache_saved(-(-req.n // max(1, client.max_n)))
    entries = (
        expansion_cache.entry_rows(cache.scope, cache.endpoint, fresh) if cache.mode.writes else []
    )
    served = [c for c in choices if c is not None]
    cached = [keys[c.index] in cache.hits for c in served]
    return Served(Generation(served, sum(g.requests for g in generations)), cached, entries)
