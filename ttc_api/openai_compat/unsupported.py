"""OpenAI APIs ttc does not serve, answered with a clear 404 in OpenAI's shape.

``/v1/batches`` was ttc's problem batches once (now ``/v1/problem-batches``); an OpenAI
client calling ``client.batches`` gets a plain "not here" instead of a different API on
the same path.
"""

from __future__ import annotations

from fastapi import APIRouter

from ttc_api.openai_compat.errors import OpenAIError

router = APIRouter(include_in_schema=False)


@router.api_route("/v1/batches", methods=["GET", "POST"])
@router.api_route("/v1/batches/{rest:path}", methods=["GET", "POST", "DELETE"])
def batches(rest: str = "") -> None:
    raise OpenAIError(
        404,
        "ttc does not implement the OpenAI Batch API; ttc's own batches of problems with one "
        "budget are at /v1/problem-batches",
        code="not_found",
    )
