"""API keys without a server: format and checksum, hashing, verification, revocation, the
``ttc keys`` command and ``ttc serve``'s refusal to run without auth (SQLite with the
migrations applied)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from ttc_cli.main import main
from ttc_cli.migrate import upgrade
from ttc_core.errors import InputError
from ttc_core.service.auth import (
    BASE62,
    KEY_LENGTH,
    Principal,
    create_key,
    generate_key,
    key_checksum_ok,
    revoke_key,
    verify_key,
)
from ttc_core.store.db import Database
from ttc_core.store.models import ApiKey, Tenant


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    yield Database(url)


def test_keys_look_right_and_never_repeat() -> None:
    keys = [generate_key() for _ in range(2000)]
    assert len(set(keys)) == len(keys)
    for key in keys[:50]:
        assert key.startswith("ttc_") and len(key) == KEY_LENGTH
        assert set(key[4:]) <= set(BASE62)
        assert key_checksum_ok(key)


def test_any_single_typo_fails_the_checksum() -> None:
    key = generate_key()
    for i in range(4, len(key)):
        for replacement in ("0", "z", "Q"):
            if key[i] != replacement:
                assert not key_checksum_ok(key[:i] + replacement + key[i + 1 :]), (i, replacement)
    assert not key_checksum_ok(key[:-1])
    assert not key_checksum_ok(key + "0")
    assert not key_checksum_ok("abc_" + key[4:])
    assert not key_checksum_ok(key[:10] + key[11] + key[10] + key[12:]) or key[10] == key[11]
    assert not key_checksum_ok("")


def test_only_a_hash_is_stored_and_the_key_verifies(db: Database) -> None:
    with db.transaction() as session:
        row, key = create_key(session, "acme", name="ci")
    with db.session() as session:
        stored = session.scalars(select(ApiKey)).one()
        columns = [str(getattr(stored, c.key)) for c in ApiKey.__table__.columns]
        assert not any(key in value for value in columns)
        assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key.startswith(stored.prefix) and len(stored.prefix) < 12
        assert session.get(Tenant, "acme") is not None
    with db.transaction() as session:
        principal = verify_key(session, key)
    assert principal == Principal(tenant="acme", admin=False, key_id=row.id)
    with db.session() as session:
        assert session.get(ApiKey, row.id).last_used_at is not None  # type: ignore[union-attr]
    with pytest.raises(dataclasses.FrozenInstanceError):
        principal.admin = True  # type: ignore[misc]


def test_unknown_mistyped_and_revoked_keys_do_not_verify(db: Database) -> None:
    with db.transaction() as session:
        row, key = create_key(session, "acme", admin=True)
        assert verify_key(session, key) == Principal("acme", True, row.id)
        assert verify_key(session, generate_key()) is None  # well-formed, never issued
        assert verify_key(session, key[:-1] + ("0" if key[-1] != "0" else "1")) is None
        assert verify_key(session, "Bearer " + key) is None
    with db.transaction() as session:
        revoked = revoke_key(session, row.id)
        assert revoked is not None and revoked.revoked_at is not None
        first = revoked.revoked_at
    with db.transaction() as session:
        assert verify_key(session, key) is None
        again = revoke_key(session, row.id)
        # (SQLite hands datetimes back without their zone.)
        assert again is not None and again.revoked_at == first
        assert revoke_key(session, "key_unknown") is None


def test_tenant_names_are_checked(db: Database) -> None:
    with db.transaction() as session, pytest.raises(InputError) as err:
        create_key(session, "no spaces allowed")
    assert err.value.field == "tenant"


def test_keys_command(db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--database-url", db.url]
    assert main(["keys", *url, "create", "--name", "x"]) == 2  # --tenant or --admin
    capsys.readouterr()
    assert main(["keys", *url, "create", "--admin"]) == 0
    out = capsys.readouterr()
    admin_key = out.out.strip()
    assert key_checksum_ok(admin_key) and "shown once" in out.err
    assert main(["keys", *url, "create", "--tenant", "team-a", "--name", "ci"]) == 0
    team_key = capsys.readouterr().out.strip()
    with db.transaction() as session:
        assert verify_key(session, admin_key) == Principal("default", True, _id(db, admin_key))
        team = verify_key(session, team_key)
    assert team is not None and team.tenant == "team-a" and not team.admin

    assert main(["keys", *url, "list"]) == 0
    listing = capsys.readouterr().out
    assert "team-a" in listing and "admin" in listing
    assert admin_key not in listing and team_key not in listing
    assert team_key[:10] in listing  # the non-secret prefix

    assert main(["keys", *url, "revoke", team.key_id or ""]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", *url, "list"]) == 0
    assert "(revoked)" in capsys.readouterr().out
    with db.transaction() as session:
        assert verify_key(session, team_key) is None
    assert main(["keys", *url, "revoke", "key_nope"]) == 1


def _id(db: Database, key: str) -> str:
    with db.session() as session:
        prefix = key[:10]
        return session.scalars(select(ApiKey.id).where(ApiKey.prefix == prefix)).one()


def test_serve_refuses_to_start_without_auth(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TTC_AUTH_ENABLED", "false")
    monkeypatch.delenv("TTC_ALLOW_INSECURE_NO_AUTH", raising=False)
    assert main(["serve", "--port", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "auth" in err and "--no-auth" in err


def test_auth_off_is_announced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from ttc_api.app import create_app
    from ttc_core.settings import Settings

    url = f"sqlite:///{tmp_path / 'off.db'}"
    create_app(Settings(database_url=url, auth_enabled=True))
    assert "AUTH IS OFF" not in capsys.readouterr().err
    with caplog.at_level("WARNING"):
        create_app(Settings(database_url=url, auth_enabled=False, allow_insecure_no_auth=True))
    assert "API AUTH IS OFF" in capsys.readouterr().err
    assert any(r.levelname == "WARNING" and "AUTH IS OFF" in r.getMessage() for r in caplog.records)
