"""Queue and task names, in one place (the API enqueues by name)."""

from __future__ import annotations

#: Driver steps: short, plan the next expansions of a job.
DRIVER_QUEUE = "ttc.driver"
#: Expansion batches: hold many inference requests in flight at once.
EXPAND_QUEUE = "ttc.expand"

ADVANCE_TASK = "ttc.advance"
EXPAND_TASK = "ttc.expand"

#: Attempts of an expansion batch (kept in Postgres) before its job fails.
MAX_BATCH_ATTEMPTS = 3
