"""OpenTelemetry traces across the services: optional (the ``tracing`` extra), off by default.

``KAIZEN_TRACING=otlp|console`` turns them on (``docs/operations.md``, "Traces"). When off,
nothing here imports OpenTelemetry's SDK and every helper is a no-op, so the API's hot
path does no extra work: the producer and consumer check :func:`enabled` once per append
or batch, no database hook is installed, and FastAPI, which records HTTP server spans
by itself once a tracer provider exists (``http``), finds none.

What carries a trace from one service to the next:

- every Kafka record: a W3C ``traceparent`` header and the envelope's ``traceparent``
  attribute (CloudEvents Distributed Tracing), both the context of the record's send
  span (``messaging``);
- a job: the optimizer remembers the context of the event that requested it (the
  feedback that crossed the threshold, or the optimize request) and runs the job as its
  child (:func:`remember`, :func:`resumed`); the worker subprocess gets it in the
  ``TRACEPARENT`` environment variable (:func:`child_env`, :func:`from_env`);
- a PR: the publisher opens it as a child of the job's latest event it read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from shared.tracing.mode import TracingMode, parse_mode, tracing_missing

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "TracingMode",
    "child_env",
    "current_traceparent",
    "enabled",
    "from_env",
    "handling",
    "instrument_engine",
    "llm_call",
    "llm_usage",
    "parse_mode",
    "remember",
    "resumed",
    "setup",
    "shutdown",
    "tracing_missing",
]

_on = False


def enabled() -> bool:
    """Whether this process records spans."""
    return _on


def setup(mode: str, service: str) -> None:
    """Install the SDK's tracer provider and exporter for this process; ``off`` does nothing.

    ``service`` names the process (``service.name``) unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` does. Called once per process; later calls do nothing.
    """
    global _on
    if _on or parse_mode(mode) == "off":
        return
    from shared.tracing import sdk

    sdk.install(parse_mode(mode), service)
    _on = True


def switch_on() -> None:
    """Record spans with the tracer provider installed already (tests install their own)."""
    global _on
    _on = True


def switch_off() -> None:
    global _on
    _on = False


def shutdown() -> None:
    """Export the spans still buffered (a process about to exit)."""
    if _on:
        from shared.tracing import sdk

        sdk.flush()


def remember(job_id: object, captured: object | None = None) -> None:
    """Remember a span as the parent of ``job_id``'s later work in this process.

    ``captured``: what :func:`capture` returned while that span was current (default: the
    current span), for work that is kept only after its span ended.
    """
    if _on:
        from shared.tracing import context

        context.remember(str(job_id), captured)  # type: ignore[arg-type]


def capture() -> object | None:
    """The current span's context, to :func:`remember` later; ``None`` with tracing off."""
    if not _on:
        return None
    from opentelemetry import context as otel_context

    return otel_context.get_current()


@contextlib.contextmanager
def resumed(job_id: object, name: str, **attributes: Any) -> Iterator[None]:
    """A span for ``job_id``'s work, the child of what :func:`remember` kept (else a new trace)."""
    if not _on:
        yield
        return
    from shared.tracing import context

    with context.resumed(str(job_id), name, attributes):
        yield


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span; ``None`` without one or with tracing off."""
    if not _on:
        return None
    from shared.tracing import context

    return context.traceparent()


@contextlib.contextmanager
def handling(delivery: Any) -> Iterator[None]:
    """A span for one record of a consumed batch (a ``shared.kafka.consumer.Delivery``), in its trace."""
    if not _on:
        yield
        return
    from shared.tracing import messaging

    with messaging.handling(delivery):
        yield


def child_env() -> dict[str, str]:
    """``TRACEPARENT`` (and ``TRACESTATE``) of the current span, for a subprocess's environment."""
    if not _on:
        return {}
    from shared.tracing import context

    return context.child_env()


@contextlib.contextmanager
def from_env(name: str, environ: Mapping[str, str], **attributes: Any) -> Iterator[None]:
    """A span continuing the trace a parent process put in ``environ`` (:func:`child_env`)."""
    if not _on:
        yield
        return
    from shared.tracing import context

    with context.from_env(name, environ, attributes):
        yield


class LlmCall:
    """What a traced LLM call learns once it answered; a no-op while tracing is off."""

    def usage(self, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        """Record the call's token counts (``None``: unknown)."""


@contextlib.contextmanager
def llm_call(model: str, api_base: str | None = None) -> Iterator[LlmCall]:
    """A client span around one LLM call (GenAI semantic conventions)."""
    if not _on:
        yield LlmCall()
        return
    from shared.tracing import llm

    with llm.call(model, api_base) as call:
        yield call


def llm_usage(prompt_tokens: int | None, completion_tokens: int | None) -> None:
    """Record token counts on the LLM call span that is current (inside :func:`llm_call`)."""
    if _on:
        from shared.tracing import llm

        llm.current().usage(prompt_tokens, completion_tokens)


def instrument_engine(engine: Engine | AsyncEngine) -> None:
    """Spans for ``engine``'s statements, as children of the caller's span (never new traces)."""
    if _on:
        from shared.tracing import db

        db.instrument(engine)
