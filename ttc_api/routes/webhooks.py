"""Webhook routes: a job's delivery log, redelivery, and the tenant's signing secret."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from ttc_api.deps import DEFAULT_TENANT, DatabaseDep, SessionDep, SettingsDep, TenantDep
from ttc_api.problems import PROBLEM_RESPONSES, STATE_PROBLEM_RESPONSES
from ttc_api.services import get_job
from ttc_core.store.models import WebhookAttempt, WebhookDelivery, WebhookSecret
from ttc_core.webhooks import delivery_log, request_redelivery
from ttc_core.webhooks.secret_store import aware, current_secret, retiring_secrets, rotate_secret

router = APIRouter(tags=["webhooks"], responses=PROBLEM_RESPONSES)

_EXAMPLE_ATTEMPT: dict[str, Any] = {
    "attempt": 1,
    "manual": False,
    "started_at": "2026-11-29T05:00:00Z",
    "address": "203.0.113.7",
    "status_code": 503,
    "latency_ms": 41.2,
    "error": "receiver answered 503",
    "next_attempt_at": "2026-11-29T05:00:05Z",
}
_EXAMPLE_DELIVERY: dict[str, Any] = {
    "id": "msg_8f3b2a9c4d5e4f60a1b2c3d4e5f60718",
    "event": "job.succeeded",
    "status": "delivered",
    "url": "https://hooks.example.com/ttc",
    "attempts": 2,
    "next_attempt_at": None,
    "last_status_code": 200,
    "last_error": None,
    "created_at": "2026-11-29T05:00:00Z",
    "delivered_at": "2026-11-29T05:00:05Z",
    "payload": {
        "type": "job.succeeded",
        "timestamp": "2026-11-29T05:00:00Z",
        "data": {"job_id": "7d6f0c1e-...", "status": "succeeded", "result": {"answer": "72"}},
    },
    "attempt_log": [
        _EXAMPLE_ATTEMPT,
        {
            **_EXAMPLE_ATTEMPT,
            "attempt": 2,
            "status_code": 200,
            "error": None,
            "next_attempt_at": None,
        },
    ],
}


class WebhookAttemptPublic(BaseModel):
    """One HTTP attempt of a delivery."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_ATTEMPT]})

    attempt: int = Field(description="1, 2, 3... in the order they were made")
    manual: bool = Field(description="made because of a redelivery request")
    started_at: dt.datetime
    address: str | None = Field(description="the IP address connected to (the checked one)")
    status_code: int | None = Field(description="the receiver's status; null: no response")
    latency_ms: float | None
    error: str | None = Field(description="why it failed; null on a 2xx")
    next_attempt_at: dt.datetime | None = Field(
        description="when the next try is due after this failure; null after the last"
    )


class WebhookDeliveryPublic(BaseModel):
    """One event of a job for its webhook, with every attempt."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_DELIVERY]})

    id: str = Field(description="the `webhook-id` header, the same on every attempt")
    event: str = Field(description="job.succeeded, job.failed, job.cancelled or job.progress")
    status: str = Field(description="pending, delivered or exhausted")
    url: str
    attempts: int
    next_attempt_at: dt.datetime | None = Field(description="when the next try is due")
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    payload: dict[str, Any] = Field(description="the body sent: {type, timestamp, data}")
    attempt_log: list[WebhookAttemptPublic]


class WebhookDeliveriesPublic(BaseModel):
    """A job's delivery log."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"data": [_EXAMPLE_DELIVERY]}]})

    data: list[WebhookDeliveryPublic]


class RetiringSecretPublic(BaseModel):
    created_at: dt.datetime
    expires_at: dt.datetime = Field(description="it stops signing then")


class WebhookSecretPublic(BaseModel):
    """The tenant's signing secret (Standard Webhooks, `whsec_` + base64)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    "created_at": "2026-11-29T05:00:00Z",
                    "previous": [
                        {
                            "created_at": "2026-11-01T09:00:00Z",
                            "expires_at": "2026-11-30T05:00:00Z",
                        }
                    ],
                }
            ]
        }
    )

    secret: str = Field(description="verify `webhook-signature` with this")
    created_at: dt.datetime
    previous: list[RetiringSecretPublic] = Field(
        description="rotated-out secrets that still sign (a signature each) until expires_at"
    )


def _attempt_public(attempt: WebhookAttempt) -> WebhookAttemptPublic:
    return WebhookAttemptPublic(
        attempt=attempt.attempt,
        manual=attempt.manual,
        started_at=attempt.started_at,
        address=attempt.address,
        status_code=attempt.status_code,
        latency_ms=attempt.latency_ms,
        error=attempt.error,
        next_attempt_at=aware(attempt.next_attempt_at),
    )


def _delivery_public(
    delivery: WebhookDelivery, attempts: list[WebhookAttempt]
) -> WebhookDeliveryPublic:
    return WebhookDeliveryPublic(
        id=delivery.id,
        event=delivery.event,
        status=delivery.status,
        url=delivery.url,
        attempts=delivery.attempts,
        next_attempt_at=aware(delivery.next_attempt_at),
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=aware(delivery.delivered_at),
        payload=delivery.payload,
        attempt_log=[_attempt_public(a) for a in attempts],
    )


def _secret_public(secret: WebhookSecret, previous: list[WebhookSecret]) -> WebhookSecretPublic:
    return WebhookSecretPublic(
        secret=secret.secret,
        created_at=secret.created_at,
        previous=[
            RetiringSecretPublic(created_at=s.created_at, expires_at=s.expires_at)
            for s in previous
            if s.expires_at is not None
        ],
    )


@router.get("/v1/jobs/{job_id}/deliveries", response_model=WebhookDeliveriesPublic)
def read_deliveries(job_id: str, session: SessionDep, tenant: TenantDep) -> WebhookDeliveriesPublic:
    """A job's webhook deliveries, oldest first, each with its attempts (the delivery log)."""
    job = get_job(session, job_id, tenant=tenant)
    return WebhookDeliveriesPublic(
        data=[_delivery_public(d, attempts) for d, attempts in delivery_log(session, job.id)]
    )


@router.post(
    "/v1/jobs/{job_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookDeliveryPublic,
    responses=STATE_PROBLEM_RESPONSES,
)
def redeliver(
    job_id: str, delivery_id: str, db: DatabaseDep, tenant: TenantDep
) -> WebhookDeliveryPublic:
    """Send a delivery again now, with the same `webhook-id` (one more attempt)."""
    with db.transaction() as session:
        job = get_job(session, job_id, tenant=tenant)
        delivery = request_redelivery(session, job.id, delivery_id)
        attempts = next((a for d, a in delivery_log(session, job.id) if d.id == delivery.id), [])
        public = _delivery_public(delivery, attempts)
    return public


@router.get("/v1/webhooks/secret", response_model=WebhookSecretPublic)
def read_secret(db: DatabaseDep, tenant: TenantDep) -> WebhookSecretPublic:
    """The caller's tenant's signing secret (created on first read)."""
    name = tenant or DEFAULT_TENANT
    with db.transaction() as session:
        secret = current_secret(session, name)
        return _secret_public(secret, retiring_secrets(session, name))


@router.post(
    "/v1/webhooks/secret/rotate",
    response_model=WebhookSecretPublic,
    responses=STATE_PROBLEM_RESPONSES,
)
def rotate(db: DatabaseDep, settings: SettingsDep, tenant: TenantDep) -> WebhookSecretPublic:
    """Make a new signing secret; the old one keeps signing for the grace period
    (`webhook_secret_grace_s`), so deliveries carry both signatures until then."""
    name = tenant or DEFAULT_TENANT
    with db.transaction() as session:
        secret, previous = rotate_secret(session, name, grace_s=settings.webhook_secret_grace_s)
        return _secret_public(secret, previous)
