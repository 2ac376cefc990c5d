"""Server spans for the API's HTTP requests (HTTP semantic conventions).

FastAPI (0.165 and later) records them itself once a tracer provider is installed:
``SERVER`` spans named by the route's template (``POST /api/v1/feedback``), continuing a
``traceparent`` the client sent, with ``fastapi.*`` spans for dependencies, the
endpoint and serialization below them. With tracing off no provider is installed and
FastAPI records nothing. :func:`install` adds :class:`TraceRequests`, an equivalent pure
ASGI middleware, only for a FastAPI without that support.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from fastapi import FastAPI
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.tracing import context


def native() -> bool:
    """Whether this FastAPI traces requests itself."""
    return importlib.util.find_spec("fastapi.telemetry") is not None


def install(app: FastAPI) -> None:
    """Make ``app`` record a server span per request (call only with tracing on)."""
    if not native():
        app.add_middleware(TraceRequests)


class TraceRequests:
    """A server span per HTTP request, for a FastAPI that records none itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in (b"traceparent", b"tracestate")
        }
        parent = context.from_traceparent(carrier.get("traceparent"), carrier.get("tracestate"))
        method = scope.get("method", "GET")
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
        }
        if scope.get("server"):
            attributes["server.address"], attributes["server.port"] = scope["server"][0], scope["server"][1]
        tracer = context.tracer()
        with tracer.start_as_current_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            status = 500

            async def observed(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    span.set_attribute("http.response.status_code", status)
                await send(message)

            try:
                await self.app(scope, receive, observed)
            finally:
                template = getattr(scope.get("route"), "path", None)
                if template:
                    span.set_attribute("http.route", template)
                    span.update_name(f"{method} {template}")
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                    span.set_attribute("error.type", str(status))
