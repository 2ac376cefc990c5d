"""Request bodies are bounded before anything reads them: 413 before parsing or authentication.

A pure ASGI middleware. A declared ``Content-Length`` over the route's limit is refused
before a byte of the body is read; a chunked body is counted as it streams and cut off at
the limit. Neither memory nor the multipart spool (seed uploads) ever holds more than the
limit, so an anonymous client cannot grow the API's memory or disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api import API_PREFIX
from services.api.problems import problem_response, problem_type
from services.api.seeds import MAX_FILE_BYTES

#: Seed uploads (multipart) get the seed file's documented limit; every other route the JSON one.
UPLOAD_PATH = re.compile(rf"^{re.escape(API_PREFIX)}/tasks/[^/]+/seed$")
#: Room for the multipart framing around a seed file of exactly ``MAX_FILE_BYTES``.
MULTIPART_OVERHEAD = 64 * 1024


def _size(n: int) -> str:
    for unit, factor in (("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class BodyLimits:
    """The largest body each route reads, in bytes."""

    json: int
    upload: int = MAX_FILE_BYTES

    def for_path(self, path: str) -> int:
        return self.upload + MULTIPART_OVERHEAD if UPLOAD_PATH.match(path) else self.json

    def describe(self, path: str) -> str:
        """The limit as a client reads it, in the OpenAPI document and in the 413's ``detail``."""
        if UPLOAD_PATH.match(path):
            return f"the seed file is larger than {_size(self.upload)}"
        return f"the request body is larger than {_size(self.json)}"


def declared_length(scope: Scope) -> int | None:
    """The ``Content-Length`` header, or None (chunked, absent or malformed: counting decides)."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """Answer 413 problem+json as soon as a body is known to exceed its route's limit."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_path(scope["path"])
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await self._too_large(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = answered = False

        async def limited_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # The app sees a client that went away and stops reading; the 413 is the answer.
                    if not started:
                        answered = True
                        await self._too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the app's own answer to the cut-off body (a 400) is dropped
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        extensions: dict[str, Any] = {"limit_bytes": self.limits.for_path(path)}
        request_id = scope.get("state", {}).get("request_id")
        if request_id:
            extensions["request_id"] = request_id
        response = problem_response(
            413,
            f"{self.limits.describe(path)}; send less",
            path,
            title="Request body too large",
            type_=problem_type("body-too-large"),
            headers={"Connection": "close"},
            extensions=extensions,
        )
        await response(scope, receive, send)


def install(app: FastAPI, limits: BodyLimits) -> None:
    """Add the middleware (call before ``errors.install``: its 413 then carries a request id)."""
    app.state.body_limits = limits
    app.add_middleware(BodyLimit, limits=limits)


def document(app: FastAPI, openapi: dict[str, Any]) -> None:
    """Add each operation's 413, with its limit, to the OpenAPI document."""
    limits: BodyLimits | None = getattr(app.state, "body_limits", None)
    if limits is None:
        return
    for path, operations in openapi.get("paths", {}).items():
        for operation in operations.values():
            beyond = "or the event it would append is over the broker's limit"
            description = f"Too large: {limits.describe(path)} ({beyond})"
            operation.setdefault("responses", {})["413"] = {"description": description}
