"""OpenTelemetry tracing through API, workflows and activities, when ``AINS_OTEL_ENABLED`` is true.

Needs the optional extra ``otel`` (``pip install 'ains[otel]'``: opentelemetry-sdk and
opentelemetry-instrumentation-fastapi; OTLP export also needs opentelemetry-exporter-otlp-proto-http).
Everything here is a no-op when tracing is disabled or the packages are missing.

* API: FastAPI instrumentation makes a server span per request; starting a workflow runs inside it.
* Temporal: ``temporalio.contrib.opentelemetry.TracingInterceptor`` on the client (so every process's
  client and its workers) carries the trace context into workflow and activity spans.
* Logs: ``core.platform.logging`` adds ``trace_id``/``span_id`` of the current span to every line.
"""

from __future__ import annotations

import logging
from typing import Any

from ains.core.platform.settings import Settings

log = logging.getLogger("ains.tracing")
_configured = False


def available() -> bool:
    try:
        import opentelemetry.sdk.trace  # noqa: F401
        import temporalio.contrib.opentelemetry  # noqa: F401
    except ImportError:
        return False
    return True


def setup_tracing(settings: Settings, exporter: Any = None) -> bool:
    """Install a tracer provider once per process; True when tracing is on.

    ``exporter`` (a SpanExporter) overrides the OTLP exporter built from ``AINS_OTEL_EXPORTER_ENDPOINT``.
    """
    global _configured
    if not settings.otel_enabled:
        return False
    if not available():
        log.warning("AINS_OTEL_ENABLED is set but the `otel` extra is not installed; tracing is off")
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if _configured:
        current = trace.get_tracer_provider()
        if exporter is not None and isinstance(current, TracerProvider):
            current.add_span_processor(SimpleSpanProcessor(exporter))
        return True

    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif settings.otel_exporter_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning("OTLP export needs opentelemetry-exporter-otlp-proto-http; spans are not exported")
        else:
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_exporter_endpoint)))
    trace.set_tracer_provider(provider)
    _configured = True
    return True


def temporal_interceptors(settings: Settings) -> list[Any]:
    """Client interceptors (also applied to workers built on that client) for tracing, when on."""
    if not setup_tracing(settings):
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def instrument_app(app: Any, settings: Settings) -> bool:
    """Server spans for every FastAPI request, when tracing is on and the instrumentation is installed."""
    if not setup_tracing(settings):
        return False
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        log.warning("opentelemetry-instrumentation-fastapi is not installed; API requests are not traced")
        return False
    FastAPIInstrumentor.instrument_app(app, excluded_urls="metrics,health")
    return True
