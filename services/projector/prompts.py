"""The projector's fold of prompt events: versions, their numbers, which one is active.

A version's number is its task's next one, counted in log order, so a replay numbers
them alike. Activation is judged by :mod:`shared.decisions`, as the PR publisher and the
optimizer judge it (docs/adr/0006-decide-once.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.projector.jobs import history, want_job
from services.projector.outcomes import outcome, rejected
from shared.decisions import VersionStatus, decide_prompt_activated, decide_version_created
from shared.events import prompts

if TYPE_CHECKING:
    from services.projector.handlers import Fact
    from services.projector.view import Row, View, Wanted


def want_version_created(w: Wanted, f: Fact, e: prompts.PromptVersionCreated) -> None:
    w.version_ids.add(str(e.prompt_version_id))
    w.numbers_of.add(str(e.task_id))
    # A version a job exported is part of that job's history.
    want_job(w, f, e)


def want_activated(w: Wanted, f: Fact, e: prompts.PromptActivated) -> None:
    w.version_ids.add(str(e.prompt_version_id))
    w.active_versions_of.add(str(e.task_id))


def on_version_created(view: View, f: Fact, e: prompts.PromptVersionCreated) -> None:
    if e.job_id is not None:
        history(view, f, e.job_id)
    if decide_version_created(view.prompt_versions.get(str(e.prompt_version_id)) is not None).rejected:
        return
    task_id = str(e.task_id)
    number = view.last_version.get(task_id, 0) + 1
    view.prompt_versions.insert(
        {
            "id": str(e.prompt_version_id),
            "task_id": task_id,
            "job_id": str(e.job_id) if e.job_id else None,
            "version_number": number,
            "prompt_text": e.prompt_text,
            "demos": e.demos,
            "dspy_state": e.dspy_state,
            "eval_score": e.eval_score,
            "baseline_score": e.baseline_score,
            "optimized_score": e.optimized_score,
            "status": "draft",
            "optimizer": e.optimizer,
            "dspy_version": e.dspy_version,
            "created_at": f.time,
            "source": e.source,
            "test_score": e.test_score,
        }
    )
    view.last_version[task_id] = number


def _version_status(row: Row | None, task_id: str) -> VersionStatus | None:
    """The version's status as a version of ``task_id``; None when the task has no such version."""
    if row is None or row["task_id"] != task_id:
        return None
    status: VersionStatus = row["status"]
    return status


def on_activated(view: View, f: Fact, e: prompts.PromptActivated) -> None:
    versions = view.prompt_versions
    task_id = str(e.task_id)
    verdict = decide_prompt_activated(_version_status(versions.get(str(e.prompt_version_id)), task_id))
    if verdict.rejected:
        rejected(view, f, e.prompt_version_id, verdict)
        return
    active = [k for k, r in versions.rows.items() if r["task_id"] == task_id and r["status"] == "active"]
    for key in active:
        versions.update(key, status="archived")
    versions.update((str(e.prompt_version_id),), status="active")
    outcome(view, f, "accepted", e.prompt_version_id)


def on_import_attempted(view: View, f: Fact, e: prompts.PromptImportAttempted) -> None:
    """Nothing to store: an import's effect is the version and activation events before it.

    A failed import is visible in the log (and the PR publisher's log); the read model does
    not keep it yet.
    """
