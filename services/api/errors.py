"""Every error becomes problem+json: routing misses, validation, Kafka and DB outages, bugs.

``RequestContext`` is a plain ASGI middleware: it gives each request its id (the
``correlation_id`` of the events it appends, echoed in ``X-Request-ID``) and turns an
unexpected exception into a 500 problem, logging the traceback instead of sending it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api import methods
from services.api.adapters import NotYetVisible
from services.api.problems import ProblemError, invalid, problem_response, problem_type, render
from services.api.validation import FieldError, describe
from shared import logcontext
from shared.kafka.producer import MAX_EVENT_BYTES, EventTooLarge, LogUnavailable

log = logging.getLogger(__name__)

NOT_VISIBLE = "the write is durable in the log but not yet visible; retry the GET"
KAFKA_DOWN = "Kafka is unavailable; nothing was written; retry"
RETRY_AFTER_SECONDS = 2


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or uuid.uuid4())


def _problem(request: Request, error: ProblemError) -> Response:
    return render(error, request.url.path, request_id(request))


async def on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return _problem(request, exc)


async def on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else "the request failed"
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {request.method} {request.url.path}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return _problem(request, methods.not_allowed(request.method, request.url.path, allowed))
    elif exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        # FastAPI's 400 for a body that is not UTF-8; every other malformed JSON body is a 422.
        return _problem(request, invalid([FieldError(field="body", message="is not valid JSON (not UTF-8)")]))
    return _problem(request, ProblemError(exc.status_code, detail, headers=exc.headers))


async def on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return _problem(request, invalid(describe(exc.errors())))


async def on_log_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("append refused: %s", exc)
    # The API probes the broker every second; a client retrying sooner only adds load.
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return _problem(
        request,
        ProblemError(503, KAFKA_DOWN, title="Kafka unavailable", slug="kafka-unavailable", headers=retry),
    )


async def on_not_visible(request: Request, exc: Exception) -> Response:
    return _problem(request, ProblemError(504, NOT_VISIBLE, title="Not yet visible", slug="not-yet-visible"))


async def on_too_large(request: Request, exc: Exception) -> Response:
    """The API's own check, or the producer's (which also counts what it adds, e.g. ``traceparent``)."""
    assert isinstance(exc, EventTooLarge)
    detail = (
        f"the request makes a {exc.event_type} event of {exc.size} bytes; at most "
        f"{MAX_EVENT_BYTES} fit in one Kafka record: send less text per request"
    )
    return _problem(request, ProblemError(413, detail, title="Request too large", slug="event-too-large"))


async def on_database_error(request: Request, exc: Exception) -> Response:
    log.error("read model error on %s %s", request.method, request.url.path, exc_info=exc)
    detail = "the read model database is unavailable; retry (a write may already be in the log)"
    return _problem(
        request, ProblemError(503, detail, title="Read model unavailable", slug="database-unavailable")
    )


def install(app: FastAPI) -> None:
    """Register the handlers, the method check and the request-context middleware on ``app``."""
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(LogUnavailable, on_log_unavailable)
    app.add_exception_handler(NotYetVisible, on_not_visible)
    app.add_exception_handler(EventTooLarge, on_too_large)
    app.add_exception_handler(OperationalError, on_database_error)
    app.add_exception_handler(InterfaceError, on_database_error)
    app.add_middleware(methods.MethodCheck, document=lambda: app.openapi())
    app.add_middleware(RequestContext)  # outermost: every answer above carries the request id


class RequestContext:
    """Request id in, ``X-Request-ID`` out; an unexpected exception becomes a 500 problem."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        # The request id is the correlation id of every event the request appends.
        with logcontext.bound(request_id=rid, correlation_id=rid):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception(
                    "unexpected error in %s %s (request %s)", scope.get("method"), scope.get("path"), rid
                )
                if started:
                    raise  # the answer is under way; the server closes the connection
                response = _internal_error(scope.get("path", ""), rid)
                await response(scope, receive, send_with_id)


def _internal_error(path: str, rid: str) -> Response:
    extensions: dict[str, Any] = {"request_id": rid}
    detail = f"an unexpected error occurred; it was logged with request id {rid}"
    return problem_response(
        500,
        detail,
        path,
        title="Internal server error",
        type_=problem_type("internal-error"),
        extensions=extensions,
    )
