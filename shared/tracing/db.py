"""Spans for a SQLAlchemy engine's statements (database semantic conventions).

A statement gets a client span only inside another span (a request, a batch, a job):
the API's read-model pollers and other background queries would otherwise each start
a trace of their own. Hooked on the engine's cursor events, so it sees every statement
of every dialect (SQLite, PostgreSQL) without wrapping the query layer.
"""

from __future__ import annotations

import re
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.tracing import context

#: Longest statement text kept on a span.
MAX_QUERY_TEXT = 2000
_SPAN = "_kaizen_span"
_TARGET = re.compile(r"\b(?:FROM|INTO|UPDATE|TABLE)\s+\"?([A-Za-z_][A-Za-z0-9_.]*)", re.IGNORECASE)
_SYSTEMS = {"postgresql": "postgresql", "sqlite": "sqlite"}


def instrument(engine: Engine | AsyncEngine) -> None:
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    if getattr(sync, "_kaizen_traced", False):
        return
    sync._kaizen_traced = True  # type: ignore[attr-defined]
    system = _SYSTEMS.get(sync.dialect.name, sync.dialect.name)
    namespace = sync.url.database or ""

    def before(
        conn: Connection,
        cursor: DBAPICursor,
        statement: str,
        parameters: Any,
        ctx: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        if ctx is None or not trace.get_current_span().get_span_context().is_valid:
            return
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "QUERY"
        target = _TARGET.search(statement)
        name = f"{operation} {target.group(1)}" if target and operation != "BEGIN" else operation
        attributes: dict[str, Any] = {
            "db.system.name": system,
            "db.operation.name": operation,
            "db.query.text": statement[:MAX_QUERY_TEXT],
        }
        if namespace:
            attributes["db.namespace"] = namespace.rsplit("/", 1)[-1]
        if target:
            attributes["db.collection.name"] = target.group(1)
        if executemany:
            attributes["db.operation.batch.size"] = len(parameters) if isinstance(parameters, list) else 0
        span = context.tracer().start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        setattr(ctx, _SPAN, span)

    def after(
        conn: Connection,
        cursor: DBAPICursor,
        statement: str,
        parameters: Any,
        ctx: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        span: trace.Span | None = getattr(ctx, _SPAN, None)
        if span is not None:
            setattr(ctx, _SPAN, None)
            span.end()

    def failed(exc_ctx: ExceptionContext) -> None:
        span: trace.Span | None = getattr(exc_ctx.execution_context, _SPAN, None)
        if span is not None:
            setattr(exc_ctx.execution_context, _SPAN, None)
            error = exc_ctx.original_exception
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
            span.end()

    event.listen(sync, "before_cursor_execute", before)
    event.listen(sync, "after_cursor_execute", after)
    event.listen(sync, "handle_error", failed)
