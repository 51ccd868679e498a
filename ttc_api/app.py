"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from ttc_api.csrf import SameOriginCookieActions
from ttc_api.deps import AUTHENTICATED, Dispatcher, warn_if_auth_off
from ttc_api.event_hub import EventHub
from ttc_api.json_check import StorableJSONBodies
from ttc_api.json_only import JSONBodiesOnly
from ttc_api.limits import BodySizeLimit, RejectNulInURL
from ttc_api.metrics import install_observability
from ttc_api.openai_compat import install_openai_compat
from ttc_api.openapi import install_openapi
from ttc_api.problems import install_problem_handlers
from ttc_api.query_check import reject_unknown_query
from ttc_api.routes import (
    admin,
    batches,
    datasets,
    evals,
    events,
    jobs,
    nodes,
    replay,
    webhooks,
)
from ttc_api.ui import mount_ui
from ttc_core.service.tenant_limits import make_submission_rate
from ttc_core.settings import Settings, get_settings
from ttc_core.store.db import Database

log = logging.getLogger(__name__)


def default_dispatcher(settings: Settings) -> Dispatcher:
    if settings.executor == "celery":
        from ttc_core.webhooks import set_waker
        from ttc_worker.dispatch import CeleryDispatcher
        from ttc_worker.webhook_tasks import wake_deliveries

        set_waker(wake_deliveries)  # deliveries committed here go to the webhook queue
        return CeleryDispatcher()
    from ttc_core.engine.runtime import EngineContext, make_http_client
    from ttc_core.executor import BackgroundExecutor

    log.warning("executor=local: jobs run inside this API process (embedded mode)")
    return BackgroundExecutor(
        lambda: EngineContext(
            settings=settings, db=Database(settings.database_url), http=make_http_client()
        )
    )


def create_app(settings: Settings | None = None, dispatcher: Dispatcher | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.dispatcher = dispatcher or default_dispatcher(settings)
        try:
            yield
        finally:
            await app.state.event_hub.close()
            app.state.dispatcher.close()

    app = FastAPI(
        title="ttc",
        version="0.1.0",
        summary="Test-time compute scaling: search, verify and persist reasoning trees.",
        lifespan=lifespan,
        # A query parameter no route takes is a 422, never silently ignored.
        dependencies=[Depends(reject_unknown_query)],
    )
    app.state.settings = settings
    app.state.db = Database(settings.database_url)
    app.state.submission_rate = make_submission_rate(settings)
    app.state.event_hub = EventHub(
        app.state.db, poll_s=settings.sse_poll_s, auth_check_s=settings.sse_auth_check_s
    )
    warn_if_auth_off(settings)
    install_problem_handlers(app)
    # Innermost first: the body is checked once the size limit has let it through.
    app.add_middleware(StorableJSONBodies)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        # A dataset upload is a file: its own limit (checked on the decoded text, naming
        # the field), with room for JSON's escapes of it (at most one per character).
        path_limits={"/v1/datasets": 2 * settings.max_dataset_bytes + settings.max_body_bytes},
    )
    app.add_middleware(JSONBodiesOnly)
    app.add_middleware(RejectNulInURL)
    install_openai_compat(app)
    # Outermost: a forged cookie request is refused before its body is even read.
    app.add_middleware(SameOriginCookieActions)
    app.include_router(jobs.router, dependencies=AUTHENTICATED)
    app.include_router(replay.router, dependencies=AUTHENTICATED)
    app.include_router(batches.router, dependencies=AUTHENTICATED)
    app.include_router(nodes.router, dependencies=AUTHENTICATED)
    app.include_router(events.router, dependencies=AUTHENTICATED)
    app.include_router(admin.router, dependencies=AUTHENTICATED)
    app.include_router(webhooks.router, dependencies=AUTHENTICATED)
    app.include_router(datasets.router, dependencies=AUTHENTICATED)
    app.include_router(evals.router, dependencies=AUTHENTICATED)
    mount_ui(app)
    install_openapi(app)
    install_observability(app, settings)

    @app.get("/health", tags=["ops"])
    def health() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    return app
