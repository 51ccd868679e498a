"""Queue and task names, in one place (the API enqueues by name)."""

from __future__ import annotations

#: Driver steps: short, plan the next expansions of a job.
DRIVER_QUEUE = "ttc.driver"
#: Expansion batches: hold many inference requests in flight at once.
EXPAND_QUEUE = "ttc.expand"

#: Housekeeping: the reaper.
MAINTENANCE_QUEUE = "ttc.maintenance"
#: Webhook deliveries (their own queue, so slow receivers never hold up a search).
WEBHOOK_QUEUE = "ttc.webhooks"

ADVANCE_TASK = "ttc.advance"
REAP_TASK = "ttc.reap"
EXPAND_TASK = "ttc.expand"
#: Driver step of a problem batch (``ttc_core.problem_batches.rounds``), on the driver queue.
BATCH_TASK = "ttc.batch"
#: One attempt of a webhook delivery (ttc_worker.webhook_tasks).
WEBHOOK_TASK = "ttc.webhook"
