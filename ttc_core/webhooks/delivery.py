"""Sending a delivery: claim it, sign it, check the URL, POST once, record the attempt,
schedule the next one or give up.

Delivery state lives in the database; queue messages only say "look at delivery X".
Any number of wake-ups for the same delivery are harmless: an attempt starts only when
the delivery is pending, due, and not claimed by a live attempt (a claim lasts the
attempt's timeout plus a margin, so a killed worker's claim runs out by itself).

Retry schedule (``webhook_retry_schedule_s``): entry ``i`` is the delay before attempt
``i + 1``; each delay gets ±20% jitter. After the last entry the delivery is
``exhausted`` and a ``webhook_exhausted`` job event says so. A redelivery adds one
attempt now, with the same ``webhook-id``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from dataclasses import dataclass

import httpx
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ttc_core.errors import ConflictError, NotFoundError
from ttc_core.observability import metrics
from ttc_core.settings import Settings
from ttc_core.store.db import Database
from ttc_core.store.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, utcnow
from ttc_core.store.queries import append_event
from ttc_core.webhooks.events import WebhookSpec, jittered
from ttc_core.webhooks.secret_store import aware, signing_secrets
from ttc_core.webhooks.sender import SendResult, send
from ttc_core.webhooks.signing import webhook_headers
from ttc_core.webhooks.ssrf import (
    Resolver,
    SSRFPolicy,
    UnsafeWebhookURL,
    check_webhook_url,
    system_resolver,
)
from ttc_core.webhooks.wakeup import wake_after_commit

log = logging.getLogger(__name__)

#: Added to the attempt timeout for the claim: resolution, signing, bookkeeping.
CLAIM_MARGIN_S = 30.0
#: A wake-up this close to the due time was early, not a duplicate (see wake_again_in).
EARLY_WAKE_S = 2.0


def policy_for(settings: Settings) -> SSRFPolicy:
    return SSRFPolicy.build(
        allow_http=settings.webhook_allow_http, allow_hosts=settings.webhook_allow_hosts
    )


def body_bytes(payload: dict[str, object]) -> bytes:
    """The exact bytes sent (and signed): compact, ASCII-only JSON (any text a model
    wrote survives, lone surrogates included), the same for every attempt."""
    return json.dumps(payload, separators=(",", ":")).encode()


@dataclass(frozen=True)
class AttemptOutcome:
    delivery_id: str
    #: Whether an attempt was made (False: not due, claimed elsewhere, or finished).
    attempted: bool
    status: str | None
    #: When the delivery is due next (None when it is finished).
    next_attempt_at: dt.datetime | None

    def retry_in(self, now: dt.datetime | None = None) -> float | None:
        """Seconds until the next attempt is due, or None when nothing is left to do."""
        if self.status != DeliveryStatus.pending or self.next_attempt_at is None:
            return None
        return max(0.0, (self.next_attempt_at - (now or utcnow())).total_seconds())

    def wake_again_in(self) -> float | None:
        """When the caller should wake this delivery again, or None.

        After an attempt: when the next one is due. Without one, only for a wake-up that
        came a moment early (a countdown firing before its due time). Any other wake-up
        that found nothing to do is a duplicate (another message, or the reaper, also
        carries this delivery; a live attempt schedules what follows it): following it
        up would keep a second chain of messages alive for nothing.
        """
        delay = self.retry_in()
        if self.attempted or (delay is not None and delay <= EARLY_WAKE_S):
            return delay
        return None


@dataclass
class _Claim:
    token: str
    attempt: int
    manual: bool
    url: str
    body: bytes
    secrets: list[str]


def _claim(session: Session, delivery_id: str, settings: Settings) -> _Claim | AttemptOutcome:
    now = utcnow()
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        return AttemptOutcome(delivery_id, False, None, None)
    due = aware(delivery.next_attempt_at)
    claimed_until = aware(delivery.claimed_until)
    if claimed_until is not None and claimed_until > now:
        # A live attempt: it records its outcome and schedules what follows.
        return AttemptOutcome(delivery_id, False, delivery.status, None)
    if delivery.status != DeliveryStatus.pending or (due is not None and due > now):
        return AttemptOutcome(delivery_id, False, delivery.status, due)
    token = uuid.uuid4().hex
    delivery.attempts += 1
    delivery.claim_token = token
    delivery.claimed_until = now + dt.timedelta(
        seconds=settings.webhook_timeout_s * 2 + CLAIM_MARGIN_S
    )
    claim = _Claim(
        token=token,
        attempt=delivery.attempts,
        manual=delivery.manual,
        url=delivery.url,
        body=body_bytes(delivery.payload),
        secrets=signing_secrets(session, delivery.tenant),
    )
    delivery.manual = False
    return claim


def _send(
    claim: _Claim,
    delivery_id: str,
    settings: Settings,
    resolver: Resolver | None,
    transport: httpx.BaseTransport | None,
) -> tuple[SendResult, str | None]:
    started = time.perf_counter()
    try:
        target = check_webhook_url(
            claim.url,
            policy_for(settings),
            resolver or system_resolver(settings.webhook_resolve_timeout_s),
        )
    except UnsafeWebhookURL as exc:
        latency = round((time.perf_counter() - started) * 1000, 2)
        return SendResult(None, latency, f"refused by the SSRF guard: {exc}"), None
    timestamp = int(time.time())
    headers = webhook_headers(claim.secrets, delivery_id, timestamp, claim.body.decode())
    result = send(
        target, headers, claim.body, timeout_s=settings.webhook_timeout_s, transport=transport
    )
    return result, str(target.address)


def _record(
    session: Session,
    delivery_id: str,
    claim: _Claim,
    result: SendResult,
    address: str | None,
    started_at: dt.datetime,
    settings: Settings,
) -> AttemptOutcome:
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        return AttemptOutcome(delivery_id, True, None, None)
    next_at: dt.datetime | None = None
    still_ours = delivery.claim_token == claim.token
    if still_ours:
        delivery.claim_token = None
        delivery.claimed_until = None
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error
        schedule = settings.webhook_retry_schedule_s
        if result.ok:
            delivery.status = DeliveryStatus.delivered
            delivery.delivered_at = utcnow()
            delivery.next_attempt_at = None
        elif delivery.attempts < len(schedule):
            delay = jittered(schedule[delivery.attempts])
            next_at = utcnow() + dt.timedelta(seconds=delay)
            delivery.status = DeliveryStatus.pending
            delivery.next_attempt_at = next_at
        else:
            delivery.status = DeliveryStatus.exhausted
            delivery.next_attempt_at = None
            append_event(
                session,
                delivery.job_id,
                "webhook_exhausted",
                delivery_id=delivery.id,
                event=delivery.event,
                attempts=delivery.attempts,
                last_status_code=result.status_code,
                last_error=result.error,
            )
            log.warning("webhook %s exhausted after %d attempts", delivery.id, delivery.attempts)
    session.add(
        WebhookAttempt(
            delivery_id=delivery_id,
            attempt=claim.attempt,
            manual=claim.manual,
            started_at=started_at,
            address=address,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            next_attempt_at=next_at,
        )
    )
    return AttemptOutcome(delivery_id, True, delivery.status, aware(delivery.next_attempt_at))


def attempt_delivery(
    db: Database,
    settings: Settings,
    delivery_id: str,
    *,
    resolver: Resolver | None = None,
    transport: httpx.BaseTransport | None = None,
) -> AttemptOutcome:
    """Make the delivery's next attempt if it is due; returns when it is due next.

    ``resolver`` and ``transport`` default to the system resolver and a real HTTP
    transport; tests pass a resolver stub (no network) and sometimes a transport.
    """
    with db.transaction() as session:
        claim = _claim(session, delivery_id, settings)
    if isinstance(claim, AttemptOutcome):
        return claim
    started_at = utcnow()
    result, address = _send(claim, delivery_id, settings, resolver, transport)
    with db.transaction() as session:
        outcome = _record(session, delivery_id, claim, result, address, started_at, settings)
    metrics.webhook_attempt(outcome.status, result.ok, result.latency_ms)
    log.info(
        "webhook %s attempt %d: %s (%s ms)",
        delivery_id,
        claim.attempt,
        result.status_code or result.error,
        result.latency_ms,
    )
    return outcome


def request_redelivery(session: Session, job_id: str, delivery_id: str) -> WebhookDelivery:
    """Ask for one more attempt now, with the same ``webhook-id`` (woken after commit)."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.job_id != job_id:
        raise NotFoundError(f"no delivery {delivery_id} of job {job_id}")
    claimed_until = aware(delivery.claimed_until)
    if claimed_until is not None and claimed_until > utcnow():
        raise ConflictError(f"an attempt of delivery {delivery_id} is in flight; try again")
    delivery.status = DeliveryStatus.pending
    delivery.next_attempt_at = utcnow()
    delivery.manual = True
    wake_after_commit(session, delivery.id)
    return delivery


def find_due_deliveries(
    db: Database, *, late_s: float, limit: int = 500, now: dt.datetime | None = None
) -> list[str]:
    """Pending deliveries due ``late_s`` ago or more whose wake-up never came (or whose
    attempt died with its worker); marks them so the next sweep leaves them a while."""
    now = now or utcnow()
    before = now - dt.timedelta(seconds=late_s)
    with db.transaction() as session:
        rows = list(
            session.scalars(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.status == DeliveryStatus.pending,
                    WebhookDelivery.next_attempt_at <= before,
                    or_(
                        WebhookDelivery.claimed_until.is_(None),
                        WebhookDelivery.claimed_until < now,
                    ),
                    or_(
                        WebhookDelivery.reaped_at.is_(None),
                        WebhookDelivery.reaped_at < before,
                    ),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for delivery in rows:
            delivery.reaped_at = now
    if rows:
        log.warning("reaper: waking %d overdue webhook deliveries", len(rows))
    return [d.id for d in rows]


def delivery_log(
    session: Session, job_id: str
) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """A job's deliveries, oldest first, each with its attempts in order."""
    deliveries = list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id == job_id)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        )
    )
    attempts: dict[str, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt, WebhookAttempt.id)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts[d.id]) for d in deliveries]


def validate_webhook(
    spec: WebhookSpec, settings: Settings, *, resolver: Resolver | None = None
) -> None:
    """The submission-time check of a webhook URL (scheme, host form, resolution);
    raises :class:`UnsafeWebhookURL` naming ``webhook.url``."""
    check_webhook_url(
        spec.url,
        policy_for(settings),
        resolver or system_resolver(settings.webhook_resolve_timeout_s),
    )
