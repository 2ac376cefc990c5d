"""Installing OpenTelemetry's SDK: a tracer provider and one exporter (the ``tracing`` extra).

Only imported when ``KAIZEN_TRACING`` is not ``off``. The exporters read the standard
variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_SCHEDULE_DELAY``, ``OTEL_TRACES_SAMPLER``, ...
"""

from __future__ import annotations

import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from shared.tracing.mode import TracingMode

_provider: TracerProvider | None = None


def resource(service: str) -> Resource:
    """The process's resource: ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` win over ``service``."""
    found = Resource.create()
    named = str(found.attributes.get(SERVICE_NAME, ""))
    if named and not named.startswith("unknown_service"):
        return found
    return found.merge(Resource({SERVICE_NAME: service}))


def exporter(mode: TracingMode) -> SpanExporter:
    if mode == "console":
        # sys.stdout as of now: the optimizer's worker has pointed it at stderr (its stdout
        # is the job protocol).
        return ConsoleSpanExporter(out=sys.stdout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def install(mode: TracingMode, service: str) -> None:
    global _provider
    provider = TracerProvider(resource=resource(service))
    provider.add_span_processor(BatchSpanProcessor(exporter(mode)))
    trace.set_tracer_provider(provider)
    _provider = provider


def flush(timeout_millis: int = 5000) -> None:
    if _provider is not None:
        _provider.force_flush(timeout_millis)
