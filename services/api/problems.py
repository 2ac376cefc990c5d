"""RFC 7807 problem details: the body of every 4xx and 5xx answer.

Routes raise :class:`ProblemError`; ``errors.py`` renders it (and every other error) with
:func:`problem_response`. A problem's ``type`` is a URN naming the kind of problem, so a
client can branch on it without parsing ``title`` or ``detail``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse

from services.api.validation import FieldError, summary

PROBLEM_JSON = "application/problem+json"
_TYPE_PREFIX = "urn:kaizen:problem:"


def problem_type(slug: str) -> str:
    return _TYPE_PREFIX + slug


def default_slug(status: int) -> str:
    """``not-found`` for 404, ``conflict`` for 409, …: the status's phrase as a slug."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    return phrase.lower().replace(" ", "-").replace("'", "")


def default_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ProblemError(Exception):
    """An answer that is a problem: raise it anywhere in a request; ``errors.py`` renders it."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or default_title(status)
        self.type = problem_type(slug or default_slug(status))
        self.headers = dict(headers or {})
        self.extensions = extensions


def problem_body(
    status: int,
    detail: str,
    instance: str,
    *,
    title: str | None = None,
    type_: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The problem document; extension members never override the five standard ones."""
    body: dict[str, Any] = {
        "type": type_ or problem_type(default_slug(status)),
        "title": title or default_title(status),
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    for name, value in (extensions or {}).items():
        body.setdefault(name, value)
    return body


def problem_response(
    status: int,
    detail: str,
    instance: str,
    *,
    title: str | None = None,
    type_: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body = problem_body(status, detail, instance, title=title, type_=type_, extensions=extensions)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def render(error: ProblemError, instance: str, request_id: str | None = None) -> JSONResponse:
    extensions = dict(error.extensions)
    if request_id is not None:
        extensions.setdefault("request_id", request_id)
    return problem_response(
        error.status,
        error.detail,
        instance,
        title=error.title,
        type_=error.type,
        headers=error.headers,
        extensions=extensions,
    )


def not_found(detail: str) -> ProblemError:
    return ProblemError(404, detail)


def conflict(detail: str, **extensions: Any) -> ProblemError:
    return ProblemError(409, detail, **extensions)


def invalid(errors: Sequence[FieldError]) -> ProblemError:
    """A 422 listing each broken rule, like FastAPI's own validation errors."""
    return ProblemError(
        422,
        summary(errors),
        title="Invalid request",
        slug="validation-error",
        errors=[e.model_dump() for e in errors],
    )
