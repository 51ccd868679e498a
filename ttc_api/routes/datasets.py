"""Dataset routes: upload problems once (JSONL, CSV or JSON rows), read, list."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel
from sqlalchemy import select

from ttc_api import eval_examples
from ttc_api.cursors import newest_first
from ttc_api.deps import DatabaseDep, PrincipalDep, SessionDep, SettingsDep, TenantDep
from ttc_api.examples import json_example, request_example
from ttc_api.problems import PROBLEM_RESPONSES
from ttc_core.evals.datasets import DatasetCreate, create_dataset, get_dataset, parse_request
from ttc_core.store.models import Dataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=PROBLEM_RESPONSES)

#: Rows shown with a dataset (the whole set goes to the evals that use it).
PREVIEW_ROWS = 5


class DatasetPublic(BaseModel):
    id: str
    name: str
    rows: int
    size_bytes: int
    created_at: dt.datetime
    #: The first rows as validated (``id`` filled in).
    preview: list[dict[str, Any]]


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    next_cursor: str | None = None


def _public(dataset: Dataset) -> DatasetPublic:
    return DatasetPublic(
        id=dataset.id,
        name=dataset.name,
        rows=dataset.row_count,
        size_bytes=dataset.size_bytes,
        created_at=dataset.created_at,
        preview=list(dataset.rows[:PREVIEW_ROWS]),
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetPublic,
    responses={201: json_example(eval_examples.DATASET)},
    openapi_extra=request_example(eval_examples.DATASET_CREATE),
)
def upload_dataset(
    body: DatasetCreate,
    response: Response,
    db: DatabaseDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> DatasetPublic:
    """Upload a dataset (rows, or a JSONL or CSV file's text), validated row by row."""
    rows, size = parse_request(body, settings)
    with db.transaction() as session:
        dataset = create_dataset(
            session, tenant=principal.tenant, name=body.name, rows=rows, size=size
        )
        public = _public(dataset)
    response.headers["Location"] = f"/v1/datasets/{public.id}"
    return public


@router.get(
    "",
    response_model=DatasetsPublic,
    responses={200: json_example({"data": [eval_examples.DATASET], "next_cursor": None})},
)
def read_datasets(
    session: SessionDep,
    tenant: TenantDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> DatasetsPublic:
    """List datasets, newest first (cursor-paged)."""
    query = select(Dataset)
    if tenant is not None:
        query = query.where(Dataset.tenant == tenant)
    rows, next_cursor = newest_first(session, Dataset, query, cursor, limit)
    return DatasetsPublic(data=[_public(d) for d in rows], next_cursor=next_cursor)


@router.get(
    "/{dataset_id}",
    response_model=DatasetPublic,
    responses={200: json_example(eval_examples.DATASET)},
)
def read_dataset(dataset_id: str, session: SessionDep, tenant: TenantDep) -> DatasetPublic:
    """A dataset's size and first rows."""
    return _public(get_dataset(session, dataset_id, tenant=tenant))
