"""One fold function per event type, listed in ``HANDLERS`` at the bottom; ``evolve`` applies one.

Each changes the batch's in-memory :class:`~services.projector.view.View`. The functions
live in one module per stream (``keys``, ``tasks``, ``jobs``, ``prs``, ``prompts``,
``ops``, ``webhooks``); this module is the entry point that dispatches to them. Requests
about tasks and prompt versions are judged by :mod:`shared.decisions`, the functions the
optimizer and the PR publisher use too (docs/adr/0006-decide-once.md); the read model's
own rules (a stage event never revives an ended job, …) stay in the stream modules. No
I/O: :func:`wanted` names the rows a batch reads, ``adapters`` loads and writes them.
Timestamps come from the envelope, never the clock, so a replay produces identical rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.projector import webhooks as webhook_fold
from services.projector.jobs import (
    on_cancel_requested,
    on_job_compiled,
    on_job_compiling,
    on_job_evaluating,
    on_job_exporting,
    on_job_failed,
    on_job_requested,
    on_job_started,
    on_job_succeeded,
    on_optimization_rejected,
    on_optimization_requested,
    on_trial,
    want_job,
    want_job_requested,
)
from services.projector.keys import on_key_created, on_key_revoked, want_key_created, want_key_revoked
from services.projector.ops import on_heartbeat
from services.projector.prompts import (
    on_activated,
    on_import_attempted,
    on_version_created,
    want_activated,
    want_version_created,
)
from services.projector.prs import on_pr_created, on_pr_failed, on_pr_retry
from services.projector.tasks import (
    on_feedback,
    on_seeds,
    on_task_created,
    on_task_deleted,
    on_task_updated,
    want_feedback,
    want_task,
)
from services.projector.view import View, Wanted
from shared.events import feedback as fb
from shared.events import jobs as jb
from shared.events import keys as ky
from shared.events import ops, prompts, prs
from shared.events import tasks as tk
from shared.events.base import Event
from shared.events.envelope import Envelope


@dataclass(frozen=True)
class Fact:
    """An event and where it sits in the log."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int

    @property
    def time(self) -> datetime:
        return self.envelope.time


def evolve(view: View, fact: Fact) -> View:
    """Fold one event into ``view`` (in place; returned for chaining)."""
    HANDLERS[type(fact.envelope.data)](view, fact, fact.envelope.data)
    return view


def wanted(facts: Iterable[Fact]) -> Wanted:
    """The rows the handlers of ``facts`` read. Fetching more is harmless; fetching less is a bug.

    Dispatched on the event's type, like ``evolve``: most records are feedback, and a chain
    of ``isinstance`` tests for every record showed in a rebuild's profile.
    """
    w = Wanted()
    for fact in facts:
        e = fact.envelope.data
        want = _WANTS.get(type(e))
        if want is not None:
            want(w, fact, e)
    return w


def _want_webhook(w: Wanted, f: Fact, e: Event) -> None:
    webhook_fold.want(w, e)


Handler = Callable[[View, Fact, Any], None]

HANDLERS: dict[type[Event], Handler] = {
    ky.ApiKeyCreated: on_key_created,
    ky.ApiKeyRevoked: on_key_revoked,
    tk.TaskCreated: on_task_created,
    tk.TaskUpdated: on_task_updated,
    tk.TaskDeleted: on_task_deleted,
    fb.FeedbackRecorded: on_feedback,
    fb.SeedsUploaded: on_seeds,
    jb.OptimizationRequested: on_optimization_requested,
    jb.OptimizationRejected: on_optimization_rejected,
    jb.JobRequested: on_job_requested,
    jb.JobStarted: on_job_started,
    jb.JobEvaluating: on_job_evaluating,
    jb.JobCompiling: on_job_compiling,
    jb.JobExporting: on_job_exporting,
    jb.JobTrialCompleted: on_trial,
    jb.JobCompiled: on_job_compiled,
    jb.JobSucceeded: on_job_succeeded,
    jb.JobFailed: on_job_failed,
    jb.JobCancelRequested: on_cancel_requested,
    prs.PrRetryRequested: on_pr_retry,
    prs.PrCreated: on_pr_created,
    prs.PrFailed: on_pr_failed,
    prompts.PromptVersionCreated: on_version_created,
    prompts.PromptActivated: on_activated,
    prompts.PromptImportAttempted: on_import_attempted,
    ops.ServiceHeartbeat: on_heartbeat,
    **webhook_fold.HANDLERS,
}

#: Event types with a ``job_id`` (a miss through pydantic's ``getattr`` is slow).
_OF_A_JOB = frozenset(cls for cls in HANDLERS if "job_id" in cls.model_fields)

Want = Callable[[Wanted, Fact, Any], None]

#: What each event type's handler reads (``wanted``); a type not listed reads nothing.
_WANTS: dict[type[Event], Want] = {
    **dict.fromkeys(_OF_A_JOB, want_job),
    **dict.fromkeys(webhook_fold.HANDLERS, _want_webhook),
    ky.ApiKeyCreated: want_key_created,
    ky.ApiKeyRevoked: want_key_revoked,
    tk.TaskCreated: want_task,
    tk.TaskUpdated: want_task,
    tk.TaskDeleted: want_task,
    fb.FeedbackRecorded: want_feedback,
    jb.JobRequested: want_job_requested,
    prompts.PromptVersionCreated: want_version_created,
    prompts.PromptActivated: want_activated,
}
