"""OpenTelemetry traces, off unless configured by the standard environment variables.

Tracing is on in a process when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp`` or
``console``) or an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), and ``OTEL_SDK_DISABLED`` is not true. The OTLP
exporter (HTTP/protobuf) then reads its own ``OTEL_EXPORTER_OTLP_*`` settings (endpoint,
headers, timeout); ``OTEL_SERVICE_NAME`` names the process (default ``ttc-api``,
``ttc-worker``...). Off, every span below is the API's no-op span: a function call.

Spans: ``ttc.submit`` (the API), ``ttc.task <name>`` (each Celery task, its parent taken
from the message headers: see ``ttc_worker.telemetry``), ``ttc.driver_step``,
``ttc.expansion``, ``chat <model>`` / ``text_completion <model>`` for each inference
request (OpenTelemetry's GenAI conventions) and ``ttc.score <kind>`` for each scorer call.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from contextvars import Token
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from ttc_core.observability import context

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

tracer = trace.get_tracer("ttc")
_state: dict[str, Any] = {}


def wanted() -> bool:
    """Whether the environment asks for traces."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configured() -> bool:
    """Whether this process has installed its tracer provider."""
    return _state.get("provider") is not None


def configure_tracing(service_name: str, exporter: Any = None) -> bool:
    """Install a tracer provider for this process: with ``exporter`` (tests pass an
    ``InMemorySpanExporter``, exported synchronously), else the one the environment
    names. Returns whether tracing is on. Call once per process (after fork)."""
    if exporter is None and not wanted():
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", service_name)
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for each in _env_exporters():
            provider.add_span_processor(BatchSpanProcessor(each))
    old = _state.get("provider")
    if old is not None:
        old.shutdown()
    _state["provider"] = provider
    # The global provider can be set once per process; spans go through ours via tracer.
    global tracer
    tracer = provider.get_tracer("ttc")
    return True


def _env_exporters() -> list[Any]:
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    exporters: list[Any] = []
    for name in names:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name and name != "none":
            log.error("OTEL_TRACES_EXPORTER=%s is not supported (otlp, console)", name)
    return exporters


def shutdown() -> None:
    """Flush and stop this process's exporter (at exit)."""
    provider = _state.pop("provider", None)
    if provider is not None:
        provider.shutdown()


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """A span around the block, the current span's child (a no-op when tracing is off:
    no provider of ours and none installed globally, when not even the no-op span's
    context switch is paid; it was a few percent of a worker's CPU per request)."""
    if _state.get("provider") is None and isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider
    ):
        yield trace.INVALID_SPAN
        return
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    with tracer.start_as_current_span(name, attributes=attrs) as current:
        yield current


def inject(carrier: MutableMapping[str, str]) -> None:
    """Write the current trace context into message headers (W3C ``traceparent``)."""
    propagate.inject(carrier)


def attach_from(carrier: Mapping[str, Any]) -> Token[otel_context.Context]:
    """Make the trace context in ``carrier`` current; returns a token for :func:`detach`."""
    return otel_context.attach(propagate.extract(dict(carrier)))


def detach(token: Token[otel_context.Context]) -> None:
    otel_context.detach(token)


def traced(name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a function in a span; a result with an ``id`` (a job) names it in the span and
    in the log lines that follow in this context."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with span(name) as current:
                result = fn(*args, **kwargs)
                result_id = getattr(result, "id", None)
                if isinstance(result_id, str):
                    current.set_attribute("ttc.job_id", result_id)
                    context.bind_ids(job_id=result_id)
                return result

        return wrapper

    return decorate


class OpenSpan:
    """A span started from a message's headers and ended later (a Celery task, whose start
    and end are two signals)."""

    def __init__(self, name: str, carrier: Mapping[str, Any], attributes: Mapping[str, Any]):
        self._parent = attach_from(carrier)
        attrs = {k: v for k, v in attributes.items() if v is not None}
        self.span = tracer.start_span(name, kind=trace.SpanKind.CONSUMER, attributes=attrs)
        self._current = otel_context.attach(trace.set_span_in_context(self.span))

    def end(self, error: BaseException | None = None) -> None:
        if error is not None:
            self.span.record_exception(error)
            self.span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)[:200]))
        otel_context.detach(self._current)
        self.span.end()
        otel_context.detach(self._parent)
