"""Admin routes: create, list and revoke API keys (admin keys only)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from ttc_api import examples
from ttc_api.deps import AdminDep, DatabaseDep, SessionDep
from ttc_api.problems import problem_responses
from ttc_core.errors import NotFoundError
from ttc_core.service.auth import TENANT_PATTERN, create_key, list_keys, revoke_key
from ttc_core.store.models import ApiKey

router = APIRouter(
    prefix="/v1/admin/keys", tags=["admin"], responses=problem_responses(401, 403, 404, 422)
)


class KeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"tenant": "team-a", "name": "ci", "admin": False}]},
    )

    tenant: str = Field(max_length=64, pattern=TENANT_PATTERN, description="created if new")
    name: str | None = Field(default=None, max_length=128, description="a label for people")
    admin: bool = Field(default=False, description="sees and manages every tenant")


class KeyPublic(BaseModel):
    """An API key without its secret."""

    id: str
    tenant: str
    name: str | None
    admin: bool
    prefix: str = Field(description="the key's first characters, to recognise it")
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyPublic:
        return cls.model_validate(row, from_attributes=True)


class KeyCreated(KeyPublic):
    key: str = Field(description="the API key itself: shown this once, never again")


class KeysPublic(BaseModel):
    data: list[KeyPublic]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    responses={201: examples.json_example(examples.KEY_CREATED)},
)
def create(body: KeyCreate, db: DatabaseDep, _: AdminDep) -> KeyCreated:
    """Create an API key; the response holds the key, shown only this once."""
    with db.transaction() as session:
        row, plaintext = create_key(session, body.tenant, admin=body.admin, name=body.name)
        return KeyCreated(**KeyPublic.of(row).model_dump(), key=plaintext)


@router.get("", response_model=KeysPublic, responses={200: examples.json_example(examples.KEYS)})
def read_keys(
    session: SessionDep,
    _: AdminDep,
    tenant: Annotated[str | None, Query(max_length=64, description="only this tenant")] = None,
) -> KeysPublic:
    """Every API key (revoked ones too), oldest first; never the secrets."""
    return KeysPublic(data=[KeyPublic.of(k) for k in list_keys(session, tenant=tenant)])


@router.delete(
    "/{key_id}",
    response_model=KeyPublic,
    responses={200: examples.json_example(examples.KEY_REVOKED)},
)
def revoke(key_id: str, db: DatabaseDep, _: AdminDep) -> KeyPublic:
    """Revoke a key: it is refused from the next request on. Idempotent."""
    with db.transaction() as session:
        row = revoke_key(session, key_id)
        if row is None:
            raise NotFoundError(f"no key {key_id}")
        return KeyPublic.of(row)
