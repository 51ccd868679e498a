"""The OpenAI-compatible front door: any OpenAI client gets test-time compute.

Thin envelopes over ordinary jobs (submitted by the same service as ``POST /v1/jobs``):
``GET /v1/models`` (``models``), ``POST /v1/chat/completions`` (``chat``),
``POST /v1/completions`` (``completions``), the Responses API (``responses``), their
streams (``streaming``, ``responses_stream``), and errors in OpenAI's shape (``errors``).
"""

from __future__ import annotations

from fastapi import FastAPI

from ttc_api.openai_compat import chat, completions, models, responses, unsupported
from ttc_api.openai_compat.errors import OpenAIError, OpenAIErrors, openai_error_response


def install_openai_compat(app: FastAPI) -> None:
    """Add the routes, their error handler, and the middleware that puts every error on
    an OpenAI path in OpenAI's shape (call it after the other middleware: it must see
    their answers too)."""
    for module in (models, chat, completions, responses, unsupported):
        app.include_router(module.router)
    app.add_exception_handler(OpenAIError, openai_error_response)
    app.add_middleware(OpenAIErrors)


__all__ = ["install_openai_compat"]
