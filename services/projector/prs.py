"""The projector's fold of pull-request events: a retry, and the outcome that ends the job.

A PR event changes its job's row, through the same history and end rules as the job's
own events (``jobs``); :mod:`services.projector.domain` says which statuses it may end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.projector import domain
from services.projector.jobs import finish, history
from services.projector.outcomes import outcome
from shared.events import prs

if TYPE_CHECKING:
    from services.projector.handlers import Fact
    from services.projector.view import View


def on_pr_retry(view: View, f: Fact, e: prs.PrRetryRequested) -> None:
    if history(view, f, e.job_id):
        view.jobs.update((str(e.job_id),), progress_step="retrying_pr")


def on_pr_created(view: View, f: Fact, e: prs.PrCreated) -> None:
    applied = finish(
        view,
        f,
        e.job_id,
        domain.SUCCESS,
        domain.pr_created_applies,
        pr_url=e.pr_url,
        progress_step="pr_created",
        error_message=None,
    )
    if applied:
        outcome(view, f, "accepted", e.job_id)


def on_pr_failed(view: View, f: Fact, e: prs.PrFailed) -> None:
    applied = finish(
        view,
        f,
        e.job_id,
        domain.PR_FAILED,
        domain.pr_failed_applies,
        progress_step="pr_failed",
        error_message=e.reason,
    )
    if applied:
        outcome(view, f, "rejected", e.job_id, "pr_failed", e.reason)
