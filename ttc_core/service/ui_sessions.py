"""Server-side sessions of the admin UI: the login cookie holds a random token, never the
API key.

A session is made when a key logs in through the UI's form; the browser keeps the token
(256 random bits) in an http-only cookie, and the ``ui_sessions`` row keeps its SHA-256
(like keys, a secret this random needs no slow hash), the key it stands for and when it
ends. A session answers for its key only while the key itself is valid: revoking the key
ends every session of it at once (the lookup joins the key), and ``revoke_key`` also
marks them revoked, for the record. Logout revokes the one session.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ttc_core.service.auth import Principal
from ttc_core.store.models import ApiKey, UiSession, utcnow

#: Characters of a session token (``secrets.token_urlsafe(32)``: 256 bits).
TOKEN_BYTES = 32
_MAX_TOKEN_CHARS = 128


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value  # SQLite: naive


def create_session(session: Session, key_id: str, ttl_s: float) -> str:
    """Start a session for the key; returns the token for the cookie (shown once)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    session.add(
        UiSession(
            id="ses_" + secrets.token_hex(8),
            token_hash=_hash(token),
            key_id=key_id,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=ttl_s),
        )
    )
    session.flush()
    return token


def verify_session(session: Session, token: str) -> Principal | None:
    """The principal of a live session of a live key, or None."""
    if not token or len(token) > _MAX_TOKEN_CHARS or not token.isascii():
        return None
    digest = _hash(token)
    row = session.execute(
        select(UiSession, ApiKey)
        .join(ApiKey, ApiKey.id == UiSession.key_id)
        .where(UiSession.token_hash == digest)
    ).first()
    if row is None:
        return None
    ui_session, key = row
    if not hmac.compare_digest(ui_session.token_hash, digest):
        return None
    if ui_session.revoked_at is not None or key.revoked_at is not None:
        return None
    if _aware(ui_session.expires_at) <= utcnow():
        return None
    return Principal(tenant=key.tenant, admin=key.admin, key_id=key.id)


def revoke_session(session: Session, token: str) -> None:
    """End the session of this token (logout); unknown tokens are ignored."""
    session.execute(
        update(UiSession)
        .where(UiSession.token_hash == _hash(token), UiSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
