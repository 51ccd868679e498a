"""Webhooks per the Standard Webhooks spec, with an SSRF guard.

    events.py         a job's status change → a delivery row (``enqueue_for_status``)
    wakeup.py         after commit, wake the process's sender (Celery task, local loop)
    delivery.py       claim, sign, check, POST once, record the attempt, schedule a retry
    ssrf.py           URL form, resolve once, refuse non-public addresses (pure)
    sender.py         the HTTP attempt, pinned to the checked address, no redirects
    signing.py        ``whsec_`` secrets and ``v1,`` signatures
    secret_store.py   per-tenant secrets, rotation with a grace period
    local.py          sending inside the embedded executor

No web or queue imports: the Celery task lives in ``ttc_worker.webhook_tasks``.
"""

from ttc_core.webhooks.delivery import (
    AttemptOutcome,
    attempt_delivery,
    delivery_log,
    find_due_deliveries,
    policy_for,
    request_redelivery,
    validate_webhook,
)
from ttc_core.webhooks.events import WebhookEvent, WebhookSpec, enqueue_for_status
from ttc_core.webhooks.ssrf import (
    Resolver,
    SSRFPolicy,
    UnsafeWebhookURL,
    WebhookTarget,
    check_webhook_url,
    system_resolver,
)
from ttc_core.webhooks.wakeup import set_waker

__all__ = [
    "AttemptOutcome",
    "Resolver",
    "SSRFPolicy",
    "UnsafeWebhookURL",
    "WebhookEvent",
    "WebhookSpec",
    "WebhookTarget",
    "attempt_delivery",
    "check_webhook_url",
    "delivery_log",
    "enqueue_for_status",
    "find_due_deliveries",
    "policy_for",
    "request_redelivery",
    "set_waker",
    "system_resolver",
    "validate_webhook",
]
