"""405 for a method a documented path does not have, with ``Allow`` naming all it has.

Starlette answers 405 from the first route whose path matches, so ``Allow`` named only
that route's methods (GET and POST of one path are two routes). And a templated path
(``/keys/{key_id}``) captured a concrete one (``/keys/bootstrap``) for a method only the
templated one has, answering 422 for a malformed id. Here the OpenAPI document decides,
before any route runs: as the OpenAPI specification has it, a concrete path is matched
before templated ones. Paths the document does not list (the dashboard, static files)
are left to routing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.problems import ProblemError, render

_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_PARAMETER = re.compile(r"\{[^/{}]+\}")


@dataclass(frozen=True)
class DocumentedPath:
    pattern: re.Pattern[str]
    concrete: bool
    methods: frozenset[str]


def documented_paths(document: dict[str, Any]) -> list[DocumentedPath]:
    paths = []
    for template, item in document.get("paths", {}).items():
        pieces = _PARAMETER.split(template)
        pattern = re.compile("[^/]+".join(re.escape(piece) for piece in pieces))
        methods = frozenset(name.upper() for name in item if name in _METHODS)
        paths.append(DocumentedPath(pattern, len(pieces) == 1, methods))
    return paths


def allowed_methods(paths: Sequence[DocumentedPath], path: str) -> frozenset[str] | None:
    """The methods the document gives ``path``, or None when it does not list the path."""
    matched = [documented for documented in paths if documented.pattern.fullmatch(path)]
    if not matched:
        return None
    claimed = [documented for documented in matched if documented.concrete] or matched
    return frozenset().union(*(documented.methods for documented in claimed))


def not_allowed(method: str, path: str, allowed: str) -> ProblemError:
    return ProblemError(405, f"{method} is not allowed on {path}", headers={"Allow": allowed})


class MethodCheck:
    """Answers 405 problem+json, with the whole ``Allow``, before routing."""

    def __init__(self, app: ASGIApp, document: Callable[[], dict[str, Any]]) -> None:
        self.app = app
        self.document = document  # read on the first request, once every route is included
        self.paths: list[DocumentedPath] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.paths is None:
                self.paths = documented_paths(self.document())
            allowed = allowed_methods(self.paths, scope["path"])
            if allowed is not None and scope["method"] not in allowed:
                error = not_allowed(scope["method"], scope["path"], ", ".join(sorted(allowed)))
                response = render(error, scope["path"], scope.get("state", {}).get("request_id"))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
