"""Request counts and latencies for Prometheus, and ``GET /metrics`` serving this process's families.

A pure ASGI middleware, installed outermost, so it also sees the answers other
middlewares give before routing (413, 405) and the 500 of an unexpected error. Requests
are labelled by the route's path template (``/api/v1/tasks/{task_id}``), never the raw
path, so ids cannot grow the series; a path no route matches is ``unmatched``. The
template is found from the app's routes (concrete paths first, as ``methods.py`` does),
not from the routing's scope: a request refused before routing (413) still gets its route,
and routes of included routers carry their full path.

``/metrics`` needs no key and shows no secrets (counts by route and status). With
``KAIZEN_API_PROCESSES`` > 1 each scrape reaches one process and shows its own counts;
sum over the ``instance`` a scraper adds, or scrape each process (docs/operations.md).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"


class RequestMetrics:
    """Counts every HTTP answer by method, route template and status, and times it."""

    def __init__(self, app: ASGIApp, routes: list[BaseRoute]) -> None:
        self.app = app
        self.routes = routes  # the app's list: read at the first request, once every router is in
        self.templates: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every layer ends the connection: a 500 to the client

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = self._template(scope)
        labels = (scope.get("method", ""), route, str(status))
        metrics.API_REQUESTS.labels(*labels).inc()
        metrics.API_LATENCY.labels(*labels).observe(seconds)
        if status in metrics.REFUSAL_STATUSES:
            metrics.API_REFUSALS.labels(route, str(status)).inc()

    def _template(self, scope: Scope) -> str:
        if self.templates is None:
            self.templates = route_templates(self.routes)
        path = scope.get("path", "")
        return next((template for regex, template in self.templates if regex.match(path)), UNMATCHED)


def route_templates(routes: Sequence[BaseRoute]) -> list[tuple[re.Pattern[str], str]]:
    """(full-path regex, template) of every route and mount, concrete paths before templated ones."""
    found: dict[str, re.Pattern[str]] = {}
    for context in iter_route_contexts(routes):
        regex = getattr(context, "path_regex", None)
        if context.path and isinstance(regex, re.Pattern):
            found.setdefault(context.path, regex)
    return sorted(((regex, path) for path, regex in found.items()), key=lambda item: "{" in item[1])


async def metrics_endpoint(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    """Serve ``/metrics`` and count every request (call last: the middleware must be outermost)."""
    app.add_route(METRICS_PATH, metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(RequestMetrics, routes=app.router.routes)
