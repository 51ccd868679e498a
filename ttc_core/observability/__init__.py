"""Operations: Prometheus metrics, structured logs and (optional) OpenTelemetry traces.

``metrics`` defines every metric and the one-line helpers that the engine calls at its
sites; ``context`` holds the ids bound to log lines (job, batch, node, tenant, request);
``logs`` formats them as JSON lines or text; ``tracing`` starts spans when an exporter is
configured by the standard ``OTEL_*`` variables. Nothing here imports fastapi or celery.
"""
