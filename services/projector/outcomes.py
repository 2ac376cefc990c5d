"""How the request behind an event was decided: the row the API waits on.

Shared by the stream modules (keys, tasks, jobs, prompts) whose events answer a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.projector.handlers import Fact
    from services.projector.view import View
    from shared.decisions import Verdict


def outcome(
    view: View,
    f: Fact,
    outcome: str,
    entity_id: object = None,
    reason: str | None = None,
    detail: str | None = None,
) -> None:
    """Record how the request that caused this event was decided (the API waits on it)."""
    request_id = f.envelope.correlation_id
    if request_id is None:
        return
    # The first decision is the answer; later events of the same request (a job's own
    # end, a PR outcome) must not rewrite it.
    view.request_outcomes.add(
        {
            "request_id": request_id,
            "outcome": outcome,
            "entity_id": str(entity_id) if entity_id is not None else None,
            "reason": reason,
            "detail": detail,
        }
    )


def rejected(view: View, f: Fact, entity_id: object, verdict: Verdict) -> None:
    """Record a refusal by one of :mod:`shared.decisions`, with its reason and detail."""
    outcome(view, f, "rejected", entity_id, verdict.reason, verdict.detail)
