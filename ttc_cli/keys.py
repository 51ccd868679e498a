"""``ttc keys``: create, list and revoke API keys straight in the database
(``TTC_DATABASE_URL`` or ``--database-url``). ``ttc keys create --admin`` makes the
first admin key of a new deployment; later ones can come from ``POST /v1/admin/keys``.

``create`` prints the key alone on stdout (``KEY=$(ttc keys create --tenant a)``) and
what it is on stderr; the key is never shown again.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ttc_core.errors import InputError
from ttc_core.service.auth import create_key, list_keys, revoke_key
from ttc_core.settings import Settings
from ttc_core.store.db import Database

DEFAULT_TENANT = "default"


def add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list and revoke API keys (in the database)")
    keys.add_argument("--database-url", default=None, help="default: TTC_DATABASE_URL")
    actions = keys.add_subparsers(dest="keys_command", required=True)

    create = actions.add_parser("create", help="make a key; prints it once")
    create.add_argument("--tenant", default=None, help="required unless --admin (then default)")
    create.add_argument("--admin", action="store_true", help="sees and manages every tenant")
    create.add_argument("--name", default=None, help="a label for people")
    create.set_defaults(func=_create)

    listing = actions.add_parser("list", help="every key, without secrets")
    listing.add_argument("--tenant", default=None)
    listing.set_defaults(func=_list)

    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_revoke)


def _db(ns: argparse.Namespace) -> Database:
    return Database(ns.database_url or Settings().database_url)


def _create(ns: argparse.Namespace) -> int:
    if ns.tenant is None and not ns.admin:
        print("ttc keys create: --tenant NAME is required (or --admin)", file=sys.stderr)
        return 2
    tenant = ns.tenant or DEFAULT_TENANT
    try:
        with _db(ns).transaction() as session:
            row, plaintext = create_key(session, tenant, admin=ns.admin, name=ns.name)
    except InputError as exc:
        print(f"ttc keys create: {exc}", file=sys.stderr)
        return 2
    role = "admin" if row.admin else "tenant"
    print(
        f"created {role} key {row.id} for tenant {row.tenant}; it is shown once:", file=sys.stderr
    )
    print(plaintext)
    return 0


def _list(ns: argparse.Namespace) -> int:
    with _db(ns).session() as session:
        rows = list_keys(session, tenant=ns.tenant)
    print(f"{'id':<20} {'tenant':<16} {'role':<6} {'prefix':<12} {'last used':<20} name")
    for row in rows:
        used = row.last_used_at.strftime("%Y-%m-%d %H:%M") if row.last_used_at else "never"
        role = "admin" if row.admin else "tenant"
        state = "  (revoked)" if row.revoked_at else ""
        print(
            f"{row.id:<20} {row.tenant:<16} {role:<6} {row.prefix:<12} {used:<20} "
            f"{row.name or ''}{state}"
        )
    return 0


def _revoke(ns: argparse.Namespace) -> int:
    with _db(ns).transaction() as session:
        row = revoke_key(session, ns.key_id)
    if row is None:
        print(f"ttc keys revoke: no key {ns.key_id}", file=sys.stderr)
        return 1
    print(f"revoked {row.id} (tenant {row.tenant})")
    return 0
