"""Trace context in and out of carriers: record headers, envelopes, environment variables.

Only imported while tracing is on. Everything is W3C Trace Context (``traceparent``,
``tracestate``), whatever ``OTEL_PROPAGATORS`` says: it is what the CloudEvents
Distributed Tracing extension and our record headers carry.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

W3C = TraceContextTextMapPropagator()
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
#: Jobs whose parent context one process keeps; the oldest are forgotten first.
REMEMBERED_JOBS = 4096

_jobs: OrderedDict[str, Context] = OrderedDict()
_jobs_lock = threading.Lock()
#: The parent of spans started where no span is current (a worker's library threads).
_process_parent: Context | None = None


def tracer() -> trace.Tracer:
    return trace.get_tracer("kaizen")


def traceparent(ctx: Context | None = None) -> str | None:
    """The ``traceparent`` of ``ctx`` (default: the current context); ``None`` without a span."""
    carrier: dict[str, str] = {}
    W3C.inject(carrier, context=ctx)
    return carrier.get(TRACEPARENT)


def from_traceparent(value: str | None, state: str | None = None) -> Context | None:
    """The remote parent that ``value`` names; ``None`` when absent or malformed."""
    if not value:
        return None
    carrier = {TRACEPARENT: value, **({TRACESTATE: state} if state else {})}
    ctx = W3C.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def from_record(
    headers: Iterable[tuple[str, bytes]] | None, envelope_traceparent: str | None
) -> Context | None:
    """A record's parent: its ``traceparent`` header, else its envelope's attribute."""
    found: dict[str, str] = {}
    for name, value in headers or ():
        if name in (TRACEPARENT, TRACESTATE) and value is not None:
            found[name] = value.decode("ascii", "replace")
    return from_traceparent(found.get(TRACEPARENT), found.get(TRACESTATE)) or from_traceparent(
        envelope_traceparent
    )


def remember(job_id: str, ctx: Context | None = None) -> None:
    """Keep ``ctx`` (default: the current context) as the parent of ``job_id``'s later spans."""
    ctx = ctx if ctx is not None else otel_context.get_current()
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return
    with _jobs_lock:
        _jobs[job_id] = ctx
        _jobs.move_to_end(job_id)
        while len(_jobs) > REMEMBERED_JOBS:
            _jobs.popitem(last=False)


def recall(job_id: str) -> Context | None:
    with _jobs_lock:
        return _jobs.get(job_id)


@contextlib.contextmanager
def resumed(job_id: str, name: str, attributes: Mapping[str, Any]) -> Iterator[None]:
    # Context() when nothing is known: a new trace, not a child of whatever is current.
    parent = recall(job_id) or Context()
    attrs = {"kaizen.job_id": job_id, **attributes}
    with tracer().start_as_current_span(name, context=parent, attributes=attrs):
        yield


def child_env() -> dict[str, str]:
    carrier: dict[str, str] = {}
    W3C.inject(carrier)
    return {key.upper(): value for key, value in carrier.items()}


@contextlib.contextmanager
def from_env(name: str, environ: Mapping[str, str], attributes: Mapping[str, Any]) -> Iterator[None]:
    """A span continuing ``TRACEPARENT``; library threads without a span of their own join it too."""
    global _process_parent
    parent = from_traceparent(environ.get("TRACEPARENT"), environ.get("TRACESTATE")) or Context()
    with tracer().start_as_current_span(name, context=parent, attributes=dict(attributes)):
        previous, _process_parent = _process_parent, otel_context.get_current()
        try:
            yield
        finally:
            _process_parent = previous


def parent_here() -> Context | None:
    """The current context when a span is current, else the process's fallback parent."""
    if trace.get_current_span().get_span_context().is_valid:
        return None  # the current context: start_span's default
    return _process_parent
