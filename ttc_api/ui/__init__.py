"""The admin UI: server-rendered pages under ``/ui`` plus small ES-module scripts.

Pages render a shell and the data they open with; the scripts then talk to the same
``/v1`` API as any client (with the login cookie), so the UI never sees more than the
caller's API key allows. Nothing is built or bundled: the static folder is served as is.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ttc_api.ui import eval_pages
from ttc_api.ui.access import LoginRequired, redirect_to_login
from ttc_api.ui.pages import data_router, router

STATIC_DIR = Path(__file__).parent / "static"


def mount_ui(app: FastAPI) -> None:
    """Serve the admin UI from ``app``: the pages, their data routes and static files."""
    app.include_router(router)
    app.include_router(eval_pages.router)
    app.include_router(data_router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.add_exception_handler(LoginRequired, redirect_to_login)


__all__ = ["mount_ui"]
