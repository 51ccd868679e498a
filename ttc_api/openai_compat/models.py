"""``GET /v1/models``: every generate endpoint (one plain sample) and every
``strategy@endpoint`` pair, in OpenAI's list shape."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ttc_api.deps import PrincipalDep
from ttc_api.openai_compat.errors import OPENAI_ERRORS, model_not_found
from ttc_api.openai_compat.mapping import model_ids

router = APIRouter(tags=["openai"], responses=OPENAI_ERRORS)

#: Models exist as long as the configuration does: they are dated from this process's start.
_STARTED = int(time.time())


class ModelPublic(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ttc"


class ModelsPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]


def _model(model_id: str) -> ModelPublic:
    return ModelPublic(id=model_id, created=_STARTED)


@router.get("/v1/models", response_model=ModelsPublic)
def list_models(request: Request, _: PrincipalDep) -> ModelsPublic:
    """Endpoints (plain samples) and strategy@endpoint pairs, as OpenAI models."""
    return ModelsPublic(data=[_model(m) for m in model_ids(request.app.state.settings)])


@router.get("/v1/models/{model:path}", response_model=ModelPublic)
def read_model(model: str, request: Request, _: PrincipalDep) -> ModelPublic:
    """One model, or 404 model_not_found."""
    if model not in model_ids(request.app.state.settings):
        raise model_not_found(model)
    return _model(model)
