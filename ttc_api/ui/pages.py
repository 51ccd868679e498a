"""Page routes of the admin UI and the two data routes only it needs.

Every page renders a shell with the data it opens with embedded as JSON (one round trip
to first paint); the page's script takes over from there through the ``/v1`` API.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session
from starlette.routing import NoMatchFound

from ttc_api.csrf import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    cross_origin_reason,
    login_token,
    login_token_ok,
    new_nonce,
)
from ttc_api.deps import SessionDep, SettingsDep, TenantDep
from ttc_api.problems import PROBLEM_RESPONSES, problem_response
from ttc_api.schemas import JobsPublic
from ttc_api.services import NO_NUL, get_job, job_public, list_nodes, node_detail
from ttc_api.storable import scrub
from ttc_api.ui.access import (
    PageViewerDep,
    Viewer,
    clear_login_cookie,
    key_principal,
    safe_next,
    set_login_cookie,
    set_login_nonce,
    ui_secret,
)
from ttc_api.ui.data import (
    AnswerDistribution,
    answer_distribution,
    job_parameters,
    list_jobs_page,
)
from ttc_core.errors import NotFoundError
from ttc_core.search.strategies import STRATEGIES
from ttc_core.service.ui_sessions import create_session, revoke_session
from ttc_core.settings import Settings
from ttc_core.store.models import JobStatus

templates = Jinja2Templates(directory=FilePath(__file__).parent / "templates")

router = APIRouter(prefix="/ui", include_in_schema=False)
data_router = APIRouter(prefix="/ui/api", tags=["ui"], responses=PROBLEM_RESPONSES)

#: Content-Security-Policy of every page: scripts and styles only from this server, so an
#: injected node text can never run.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

#: The webhooks module's route for a job's delivery log (linked when the app has it).
DELIVERIES_ROUTE = "read_deliveries"
#: Children per page in the tree inspector (``PAGE`` in static/treemodel.js).
TREE_PAGE = 200


def render_page(
    request: Request,
    template: str,
    viewer: Viewer | None,
    settings: Settings,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {
            "viewer": viewer,
            "flower_url": settings.flower_url,
            "base": request.scope.get("root_path", ""),
            **context,
        },
        status_code=status_code,
    )
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("")
def ui_root(request: Request) -> RedirectResponse:
    return RedirectResponse(request.scope.get("root_path", "") + "/ui/jobs", status_code=303)


@router.get("/login")
def login_form(
    request: Request, settings: SettingsDep, next: str | None = None, error: str | None = None
) -> HTMLResponse:
    message = {
        "invalid": "That key is not valid.",
        "missing": "Enter an API key.",
        "expired": "The form expired; enter the key again.",
    }
    nonce = new_nonce()
    response = render_page(
        request,
        "login.html",
        None,
        settings,
        title="Log in",
        auth_on=settings.auth_enabled,
        next=safe_next(next),
        error=message.get(error or ""),
        csrf=login_token(ui_secret(settings), nonce),
    )
    set_login_nonce(response, request, nonce)
    return response


@router.post("/login")
async def login(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Check the key like any API key, then start a session whose token (not the key)
    goes in an http-only cookie. Only this origin's own form may log in (its Origin, and
    the form's signed token against its cookie): another page cannot log a browser in
    under a key of its choosing. A refused key goes back to the form by redirect (a
    reload does not post the key again)."""
    reason = cross_origin_reason(request)
    if reason is not None:
        return problem_response(403, "Forbidden", f"CSRF: {reason}")
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    next_url = safe_next((form.get("next") or [""])[0])
    base = request.scope.get("root_path", "")
    if not settings.auth_enabled:
        return RedirectResponse(base + next_url, status_code=303)
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not login_token_ok(ui_secret(settings), nonce, (form.get("csrf") or [""])[0]):
        query = urlencode({"next": next_url, "error": "expired"})
        return RedirectResponse(f"{base}/ui/login?{query}", status_code=303)
    principal = key_principal(session, key)
    if principal is None or principal.key_id is None:
        error = "invalid" if key else "missing"
        query = urlencode({"next": next_url, "error": error})
        return RedirectResponse(f"{base}/ui/login?{query}", status_code=303)
    token = create_session(session, principal.key_id, settings.ui_session_ttl_s)
    session.commit()
    response = RedirectResponse(base + next_url, status_code=303)
    set_login_cookie(response, request, token, settings.ui_session_ttl_s)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> RedirectResponse:
    """End the session (revoked server-side: the cookie is worthless from now on). Its
    origin was checked on the way in (``ttc_api.csrf``)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        revoke_session(session, token)
        session.commit()
    response = RedirectResponse(request.scope.get("root_path", "") + "/ui/login", 303)
    clear_login_cookie(response, request)
    return response


@router.get("/jobs")
def jobs_page(request: Request, settings: SettingsDep, viewer: PageViewerDep) -> HTMLResponse:
    return render_page(
        request,
        "jobs.html",
        viewer,
        settings,
        title="Jobs",
        statuses=[s.value for s in JobStatus],
        strategies=sorted(STRATEGIES),
    )


def _deliveries_path(request: Request, job_id: str) -> str | None:
    try:
        return str(request.app.url_path_for(DELIVERIES_ROUTE, job_id=job_id))
    except NoMatchFound:
        return None


def _job_page(
    request: Request,
    session: Session,
    settings: Settings,
    viewer: Viewer,
    job_id: str,
    template: str,
    title: str,
) -> HTMLResponse:
    """A page about one job, with the job, its parameters and its links embedded."""
    try:
        if "\x00" in job_id:  # Postgres text cannot hold NUL: no such job
            raise NotFoundError(f"no job {job_id!r}")
        job = get_job(session, job_id, tenant=viewer.tenant)
    except NotFoundError:
        return render_page(
            request,
            "missing.html",
            viewer,
            settings,
            status_code=404,
            title="Not found",
            what=f"No job {job_id}.",
        )
    public = job_public(job)
    initial: dict[str, Any] = {
        "job": public.model_dump(mode="json"),
        "parameters": job_parameters(job),
        "deliveries": _deliveries_path(request, job.id),
    }
    if template == "tree.html":
        # The root and its first page of children ride along: the tree draws its first
        # rows without waiting for two more round trips.
        root = node_detail(session, job, public.root_node_id)
        first = list_nodes(session, job, parent_id=root.id, cursor=None, limit=TREE_PAGE)
        initial["root"] = root.model_dump(mode="json")
        initial["children"] = first.model_dump(mode="json")
    return render_page(
        request,
        template,
        viewer,
        settings,
        title=f"{title} {job.id[:8]}",
        job_id=job.id,
        initial=scrub(initial),
    )


@router.get("/jobs/{job_id}")
def job_page(
    job_id: str, request: Request, session: SessionDep, settings: SettingsDep, viewer: PageViewerDep
) -> HTMLResponse:
    return _job_page(request, session, settings, viewer, job_id, "job.html", "Job")


@router.get("/jobs/{job_id}/tree")
def tree_page(
    job_id: str, request: Request, session: SessionDep, settings: SettingsDep, viewer: PageViewerDep
) -> HTMLResponse:
    return _job_page(request, session, settings, viewer, job_id, "tree.html", "Tree")


@router.get("/jobs/{job_id}/graph")
def graph_page(
    job_id: str, request: Request, session: SessionDep, settings: SettingsDep, viewer: PageViewerDep
) -> HTMLResponse:
    return _job_page(request, session, settings, viewer, job_id, "graph.html", "Graph")


@router.get("/jobs/{job_id}/answers")
def answers_page(
    job_id: str, request: Request, session: SessionDep, settings: SettingsDep, viewer: PageViewerDep
) -> HTMLResponse:
    return _job_page(
        request, session, settings, viewer, job_id, "answers.html", "Answer distribution"
    )


@router.get("/jobs/{job_id}/scaling")
def old_scaling_page(
    job_id: Annotated[str, Path(pattern=NO_NUL)], request: Request
) -> RedirectResponse:
    """The answer distribution's old address (it was called "Scaling"): links keep working."""
    query = f"?{request.url.query}" if request.url.query else ""
    url = f"{request.scope.get('root_path', '')}/ui/jobs/{quote(job_id, safe='')}/answers"
    return RedirectResponse(url + query, status_code=308)


@data_router.get("/jobs", response_model=JobsPublic)
def ui_jobs(
    session: SessionDep,
    tenant: TenantDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 25,
    status: JobStatus | None = None,
    strategy: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
) -> JobsPublic:
    """Jobs for the list page: newest first, filtered by status and strategy."""
    return list_jobs_page(
        session, tenant=tenant, status=status, strategy=strategy, cursor=cursor, limit=limit
    )


@data_router.get("/jobs/{job_id}/answers", response_model=AnswerDistribution)
def ui_answers(
    job_id: Annotated[str, Path(pattern=NO_NUL)], session: SessionDep, tenant: TenantDep
) -> AnswerDistribution:
    """Answer counts and the score histogram of a job's terminal nodes."""
    return answer_distribution(session, get_job(session, job_id, tenant=tenant))
