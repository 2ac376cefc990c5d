"""Typed exceptions. Every HTTP error carries the server's RFC 7807 problem.

``except kaizen_client.NotFound`` catches a 404; ``except ApiError`` every answer that is
an error; ``except KaizenError`` also a server that could not be reached. Only direct
calls raise: ``Kaizen.feedback(...)`` never raises into the application.
"""

from __future__ import annotations

from typing import Any

import httpx

from kaizen_client.models import Problem


class KaizenError(Exception):
    """Anything this client raises."""


class TransportError(KaizenError):
    """The server could not be reached, or the connection broke (no answer to read)."""


class ApiError(KaizenError):
    """The server answered with an error; ``problem`` is its RFC 7807 document."""

    status: int = 0

    def __init__(self, problem: Problem, headers: httpx.Headers | None = None) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail}")
        self.problem = problem
        self.status = problem.status
        self.headers = headers or httpx.Headers()

    @property
    def title(self) -> str:
        return self.problem.title

    @property
    def detail(self) -> str:
        return self.problem.detail

    @property
    def type(self) -> str:
        return self.problem.type

    @property
    def errors(self) -> list[Any]:
        """The fields that broke a rule (422s), as the server listed them."""
        return list(getattr(self.problem, "errors", None) or [])


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class ValidationFailed(ApiError):
    status = 422


class RateLimited(ApiError):
    status = 429


class BadGateway(ApiError):
    """The Git provider refused the pull request again (``retry-pr``)."""

    status = 502


class Unavailable(ApiError):
    """503: Kafka is down and nothing was written; retrying is safe."""

    status = 503


class NotYetVisible(ApiError):
    """504: the write is durable in the log but not yet visible; retry the read."""

    status = 504


_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        ValidationFailed,
        RateLimited,
        BadGateway,
        Unavailable,
        NotYetVisible,
    )
}


def from_response(response: httpx.Response) -> ApiError:
    """The typed error of an error answer; a body that is not a problem is wrapped in one."""
    try:
        body = response.json()
        problem = Problem.model_validate(body)
    except ValueError:
        problem = Problem(
            type="about:blank",
            title=response.reason_phrase or "Error",
            status=response.status_code,
            detail=response.text[:500],
            instance=response.request.url.path,
        )
    cls = _BY_STATUS.get(response.status_code, ApiError)
    return cls(problem, response.headers)
