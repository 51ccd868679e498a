"""The admin UI's eval pages: the list of evals, and one eval's progress, curves, table,
comparisons and jobs (each linked to its tree). The pages open with the data embedded
and then poll the ``/v1/evals`` API like any client."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ttc_api.deps import SessionDep, SettingsDep
from ttc_api.routes.evals import get_eval, read_eval
from ttc_api.storable import scrub
from ttc_api.ui.access import PageViewerDep
from ttc_api.ui.pages import render_page
from ttc_core.errors import NotFoundError

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/evals")
def evals_page(request: Request, settings: SettingsDep, viewer: PageViewerDep) -> HTMLResponse:
    return render_page(request, "evals.html", viewer, settings, title="Evals")


@router.get("/evals/{eval_id}")
def eval_page(
    eval_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    viewer: PageViewerDep,
) -> HTMLResponse:
    try:
        if "\x00" in eval_id:  # Postgres text cannot hold NUL: no such eval
            raise NotFoundError(f"no eval {eval_id!r}")
        get_eval(session, eval_id, viewer.tenant)
    except NotFoundError:
        return render_page(
            request,
            "missing.html",
            viewer,
            settings,
            status_code=404,
            title="Not found",
            what=f"No eval {eval_id}.",
        )
    public = read_eval(eval_id, session, viewer.tenant, settings, curves=True)
    return render_page(
        request,
        "eval.html",
        viewer,
        settings,
        title=f"Eval {eval_id[:8]}",
        eval_id=eval_id,
        initial=scrub({"eval": public.model_dump(mode="json")}),
    )
