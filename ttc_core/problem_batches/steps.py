"""The driver step of a unit of many jobs (a ``problem_batches`` row): a problem batch's
allocation round (``ttc_core.problem_batches.rounds``) or an eval's next wave
(``ttc_core.evals.driver``), by the row's ``kind``. Both come as the ``batch``
follow-up that each of their jobs hands back when it finishes."""

from __future__ import annotations

from sqlalchemy import select

from ttc_core.engine.followup import FollowUp
from ttc_core.engine.runtime import EngineContext
from ttc_core.evals.driver import EVAL_KIND, advance_eval
from ttc_core.problem_batches.rounds import advance_batch
from ttc_core.store.models import ProblemBatch


def advance_unit(ctx: EngineContext, batch_id: str) -> list[FollowUp]:
    """Run the unit's driver step; returns the jobs' driver steps to start."""
    with ctx.db.session() as session:
        kind = session.scalar(select(ProblemBatch.kind).where(ProblemBatch.id == batch_id))
    if kind == EVAL_KIND:
        return advance_eval(ctx, batch_id)
    return advance_batch(ctx, batch_id)
