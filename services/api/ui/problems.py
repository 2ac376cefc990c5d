"""An API call made for a dashboard form, and its problem+json answer put in plain words.

The problem is the one the API would have sent: the app's own exception handlers render
it (a refused write, Kafka down, a timeout), and :func:`plain_words` turns it into a
sentence.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import Request


@dataclass(frozen=True)
class Outcome:
    status: int
    problem: str | None = None
    value: Any = None


async def attempt(request: Request, action: str, call: Awaitable[Any]) -> Outcome:
    """Run ``call``; an error the API renders as a problem becomes an :class:`Outcome` saying so."""
    try:
        return Outcome(200, value=await call)
    except Exception as exc:
        handler = next(
            (
                request.app.exception_handlers[k]
                for k in type(exc).__mro__
                if k in request.app.exception_handlers
            ),
            None,
        )
        if handler is None or isinstance(exc, AssertionError):
            raise
        response = await handler(request, exc)
        problem = json.loads(bytes(response.body))
        return Outcome(response.status_code, plain_words(action, problem))


#: What each status means for the person who clicked, beside the API's own title and detail.
_HINTS = {
    401: "Your key is no longer accepted; sign in again.",
    403: "Your key's role does not allow this.",
    404: "It no longer exists.",
    409: "Its current state does not allow this.",
    422: "The request was not valid.",
    502: "The Git host refused the pull request; nothing changed, so you can retry later.",
    503: "Kafka is unavailable, so nothing was written; retry in a few seconds.",
    504: "The request is in the log but its outcome did not arrive in time; reload to see it.",
}


def plain_words(action: str, problem: Mapping[str, Any]) -> str:
    """A problem+json document as one sentence a person reads: what failed, why, what now."""
    status = int(problem.get("status") or 500)
    title = str(problem.get("title") or "Error")
    detail = str(problem.get("detail") or "").rstrip(".")
    hint = _HINTS.get(status, "An unexpected error occurred.")
    because = f": {detail}." if detail else "."
    return f"Could not {action}. {title}{because} {hint} (HTTP {status})"
