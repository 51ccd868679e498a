"""How far a job has come: the total its progress bar counts nodes against.

One rule for every reader (the API's ``progress.planned_samples``, which ``ttc run``'s bar
and the admin UI's meters show):

- a job that **succeeded** has done all of its work, so its total is the nodes it made.
  A strategy's plan is an upper bound: beams finish before ``max_depth``, adaptive
  sampling stops once the vote is settled, a ``think`` job writes a thought and an
  answer, so a finished search would otherwise read 320/640 (50%);
- a job still running counts against what it **can** still spend: the strategy's
  bound in nodes (two per sample where the job thinks in a visible thought node), no
  more than its ``budget.max_nodes``, and never less than the nodes already made;
- a job that failed or was cancelled keeps the bound it had, so its bar shows how far
  it got before it stopped.
"""

from __future__ import annotations

import logging

from ttc_core.search.strategies import get_strategy
from ttc_core.store.models import Job, JobStatus

log = logging.getLogger(__name__)

#: A visible thought is a node of its own above its answer.
NODES_PER_THINKING_SAMPLE = 2


def planned_nodes(job: Job) -> int | None:
    """The total a progress bar of ``job`` counts its ``node_count`` against; None when
    the job is unfinished and its stored params no longer parse (a row older than a check,
    or odd content): a list must still show the job."""
    if job.status == JobStatus.succeeded:
        return job.node_count
    try:
        strategy = get_strategy(job.strategy)
        bound = strategy.planned_samples(strategy.parse_params(job.params))
    except Exception:
        log.warning("job %s: stored params do not parse", job.id, exc_info=True)
        return None
    if job.thinking is not None or strategy.thinks:
        bound *= NODES_PER_THINKING_SAMPLE
    max_nodes = (job.budget or {}).get("max_nodes")
    if isinstance(max_nodes, int) and max_nodes > 0:
        bound = min(bound, max_nodes)
    return max(bound, job.node_count)
