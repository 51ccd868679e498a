"""Per-tenant signing secrets: the current one, and rotated-out ones in their grace period.

The current secret is the tenant's row without ``expires_at`` (a partial unique index
keeps it single); rotating sets ``expires_at = now + grace`` on it and adds a new one.
Until then both sign every delivery, so receivers can switch at their own pace.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ttc_core.errors import ConflictError
from ttc_core.store.models import WebhookSecret, utcnow
from ttc_core.webhooks.signing import generate_secret


def aware(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment


def _current(session: Session, tenant: str, *, lock: bool = False) -> WebhookSecret | None:
    query = select(WebhookSecret).where(
        WebhookSecret.tenant == tenant, WebhookSecret.expires_at.is_(None)
    )
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def current_secret(session: Session, tenant: str) -> WebhookSecret:
    """The tenant's current secret, created on first use (two racing first uses end
    with one secret: the loser's insert fails on the unique index and it reads the
    winner's)."""
    row = _current(session, tenant)
    if row is not None:
        return row
    row = WebhookSecret(tenant=tenant, secret=generate_secret(), created_at=utcnow())
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        existing = _current(session, tenant)
        if existing is None:
            raise
        return existing
    return row


def rotate_secret(
    session: Session, tenant: str, *, grace_s: float
) -> tuple[WebhookSecret, list[WebhookSecret]]:
    """Make a new current secret; the old one keeps signing for ``grace_s`` seconds.
    Returns the new secret and the older ones still signing."""
    now = utcnow()
    old = _current(session, tenant, lock=True)
    if old is not None:
        old.expires_at = now + dt.timedelta(seconds=grace_s)
        session.flush()  # before the insert: the unique index allows one current row
    new = WebhookSecret(tenant=tenant, secret=generate_secret(), created_at=now)
    try:
        with session.begin_nested():
            session.add(new)
    except IntegrityError:
        raise ConflictError("another rotation of this tenant's secret is in progress") from None
    return new, retiring_secrets(session, tenant, now=now)


def retiring_secrets(
    session: Session, tenant: str, *, now: dt.datetime | None = None
) -> list[WebhookSecret]:
    """Rotated-out secrets still in their grace period, newest first."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(WebhookSecret)
            .where(WebhookSecret.tenant == tenant, WebhookSecret.expires_at > now)
            .order_by(WebhookSecret.created_at.desc(), WebhookSecret.id.desc())
        )
    )


def signing_secrets(session: Session, tenant: str) -> list[str]:
    """Every secret that signs a delivery now: the current one first."""
    current = current_secret(session, tenant)
    now = utcnow()
    rows = session.scalars(
        select(WebhookSecret.secret)
        .where(
            WebhookSecret.tenant == tenant,
            WebhookSecret.id != current.id,
            WebhookSecret.expires_at > now,
        )
        .order_by(WebhookSecret.created_at.desc(), WebhookSecret.id.desc())
    )
    return [current.secret, *rows]
