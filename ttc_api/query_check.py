"""Unknown query parameters are refused, not ignored.

``GET /v1/jobs?batch_id=...`` once returned every job because the route had no such
parameter: a filter that is silently dropped is worse than an error. This app-wide
dependency compares the query string of an API route (``/v1/...``) with the parameters the
matched route declares (its own and its dependencies') and answers 422 naming the first
unknown one.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ttc_core.errors import InputError


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _declared(route: APIRoute) -> frozenset[str]:
    """The route's query parameter names, worked out once and kept on the route."""
    names: frozenset[str] | None = getattr(route, "_ttc_query_names", None)
    if names is None:
        names = frozenset(_query_names(route.dependant))
        route._ttc_query_names = names  # type: ignore[attr-defined]
    return names


def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not take."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    if not request.url.path.startswith("/v1/"):
        return  # the UI's pages: their query (``?node=``) is read by the page's script
    known = _declared(route)
    for name in request.query_params:
        if name not in known:
            hint = f"; this route takes {', '.join(sorted(known))}" if known else ""
            raise InputError(f"unknown query parameter {name!r}{hint}", field=name)
