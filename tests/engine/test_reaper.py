"""The reaper sends a batch's message again only when the last one is provably lost, and
only once per loss: never a second copy of a message still waiting in a long queue."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from tests.engine.conftest import ContextFactory, make_settings
from ttc_core.engine.reaper import find_stalled
from ttc_core.engine.steps import FollowUp, advance
from ttc_core.service.submission import JobSpec, create_job
from ttc_core.store.models import ExpansionBatch, utcnow
from ttc_sim.runner import SimServer


def _age(ctx: object, batch_id: str, **moments: dt.datetime | None) -> None:
    with ctx.db.transaction() as session:  # type: ignore[attr-defined]
        session.execute(
            update(ExpansionBatch).where(ExpansionBatch.id == batch_id).values(**moments)
        )


def test_reaper_never_duplicates_a_message_it_already_sent(
    database_url: str, sim: SimServer, make_context: ContextFactory
) -> None:
    settings = make_settings(database_url, sim)
    ctx = make_context(settings)
    spec = JobSpec(strategy="self_consistency", endpoint="sim", prompt="2+2?", params={"n": 4})
    with ctx.db.transaction() as session:
        job_id = create_job(session, spec, settings, tenant="t").id
    [batch] = advance(ctx, job_id)
    now = utcnow()

    def sweep(waiting: bool) -> list[FollowUp]:
        return [
            f
            for f in find_stalled(
                ctx.db, stall_s=30, lost_after_s=600, no_message_waiting=lambda: not waiting
            )
            if f.kind == "expand"
        ]

    # Just planned: its message is in the queue.
    assert sweep(waiting=True) == [] and sweep(waiting=False) == []

    # Unclaimed for a minute behind a long queue: still waiting, not lost.
    _age(ctx, batch.id, enqueued_at=now - dt.timedelta(seconds=60))
    assert sweep(waiting=True) == []
    # The broker holds no expansion message at all: lost; sent once.
    assert sweep(waiting=False) == [FollowUp("expand", batch.id)]
    assert sweep(waiting=False) == []

    # Never taken for longer than a message can wait (the visibility timeout): lost.
    _age(ctx, batch.id, enqueued_at=now - dt.timedelta(seconds=700))
    assert sweep(waiting=True) == [FollowUp("expand", batch.id)]
    assert sweep(waiting=True) == []

    # A worker took it and died (its claim expired): sent once, then left alone.
    _age(
        ctx,
        batch.id,
        enqueued_at=now - dt.timedelta(seconds=20),
        claimed_until=now - dt.timedelta(seconds=1),
        claim_token="x" * 32,
    )
    assert sweep(waiting=True) == [FollowUp("expand", batch.id)]
    assert sweep(waiting=True) == [] and sweep(waiting=False) == []

    # A live claim is never reaped, however old the message.
    _age(
        ctx,
        batch.id,
        enqueued_at=now - dt.timedelta(seconds=700),
        claimed_until=now + dt.timedelta(seconds=30),
    )
    assert sweep(waiting=False) == []
