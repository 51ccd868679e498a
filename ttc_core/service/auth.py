"""API keys and the principal behind a request.

A key looks like ``ttc_`` + 40 random base62 characters (238 bits from ``secrets``) + 6
base62 characters of CRC32 over everything before them, like GitHub's tokens: a typo or a
truncated paste fails :func:`key_checksum_ok` before any database lookup, and secret
scanners can recognise the format. The key is shown once; the database keeps only its
SHA-256 (a key this random needs no slow hash or salt: nobody can guess one to test
against the hash) and a short non-secret ``prefix`` for people to recognise it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from ttc_core.errors import InputError
from ttc_core.store.models import ApiKey, Tenant, UiSession, utcnow

KEY_PREFIX = "ttc_"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_CHARS = 40
CHECKSUM_CHARS = 6  # 62**6 > 2**32: any CRC32 fits
KEY_LENGTH = len(KEY_PREFIX) + RANDOM_CHARS + CHECKSUM_CHARS
#: Characters of a key kept in clear for display (``ttc_`` + 6 random ones).
DISPLAY_CHARS = len(KEY_PREFIX) + 6
#: ``last_used_at`` is written at most this often per key (a read-mostly hot path).
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)

TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_TENANT_RE = re.compile(TENANT_PATTERN)
_KEY_RE = re.compile(rf"^{KEY_PREFIX}[0-9A-Za-z]{{{RANDOM_CHARS + CHECKSUM_CHARS}}}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, and whether the key may see every tenant."""

    tenant: str
    admin: bool
    key_id: str | None


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, rem = divmod(value, 62)
        digits.append(BASE62[rem])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_CHARS)


def generate_key() -> str:
    body = KEY_PREFIX + "".join(secrets.choice(BASE62) for _ in range(RANDOM_CHARS))
    return body + _checksum(body)


def key_checksum_ok(key: str) -> bool:
    """Whether ``key`` has the right shape and checksum (says nothing about the database)."""
    if len(key) != KEY_LENGTH or not _KEY_RE.match(key):
        return False
    body, check = key[:-CHECKSUM_CHARS], key[-CHECKSUM_CHARS:]
    return hmac.compare_digest(_checksum(body), check)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_tenant_name(tenant: str, field: str = "tenant") -> str:
    if not _TENANT_RE.match(tenant):
        raise InputError(
            "a tenant name is 1-64 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit",
            field=field,
        )
    return tenant


def ensure_tenant(session: Session, tenant: str) -> None:
    """Create the tenant's row if it is missing (concurrent callers may race: no error)."""
    check_tenant_name(tenant)
    values = {"name": tenant, "created_at": utcnow()}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(pg_insert(Tenant).values(values).on_conflict_do_nothing())
    else:
        session.execute(sqlite_insert(Tenant).values(values).on_conflict_do_nothing())


def create_key(
    session: Session, tenant: str, *, admin: bool = False, name: str | None = None
) -> tuple[ApiKey, str]:
    """Make a key for ``tenant`` (created if new). Returns the row and the plaintext key,
    which is never stored: show it once."""
    ensure_tenant(session, tenant)
    plaintext = generate_key()
    row = ApiKey(
        id="key_" + secrets.token_hex(8),
        tenant=tenant,
        name=name,
        admin=admin,
        prefix=plaintext[:DISPLAY_CHARS],
        key_hash=hash_key(plaintext),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row, plaintext


def verify_key(session: Session, plaintext: str) -> Principal | None:
    """The principal of a live key, or None (malformed, unknown or revoked). The caller
    commits: ``last_used_at`` is bumped at most once a minute per key."""
    if not key_checksum_ok(plaintext):
        return None
    digest = hash_key(plaintext)
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
    # The index lookup already matched; compare again in constant time so that no code
    # path ever compares secrets with ``==``.
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at:
        return None
    now = utcnow()
    last = row.last_used_at
    if last is not None and last.tzinfo is None:  # SQLite hands back naive UTC
        last = last.replace(tzinfo=dt.UTC)
    if last is None or last < now - LAST_USED_RESOLUTION:
        # Conditional, so that concurrent requests with one key write it once.
        session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == row.id,
                or_(
                    ApiKey.last_used_at.is_(None),
                    ApiKey.last_used_at < now - LAST_USED_RESOLUTION,
                ),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return Principal(tenant=row.tenant, admin=row.admin, key_id=row.id)


def revoke_key(session: Session, key_id: str) -> ApiKey | None:
    """Revoke a key and its UI sessions (idempotent: a revoked key keeps its first
    revocation time)."""
    row = session.get(ApiKey, key_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        # Its UI sessions end with it (a session of a revoked key is refused anyway;
        # this keeps the table saying so).
        session.execute(
            update(UiSession)
            .where(UiSession.key_id == key_id, UiSession.revoked_at.is_(None))
            .values(revoked_at=row.revoked_at)
            .execution_options(synchronize_session=False)
        )
        session.flush()
    return row


def list_keys(session: Session, *, tenant: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if tenant is not None:
        query = query.where(ApiKey.tenant == tenant)
    return list(session.scalars(query))
