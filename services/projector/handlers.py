"""One fold function per event type, listed in ``HANDLERS`` at the bottom; ``evolve`` applies one.

Each changes the batch's in-memory :class:`~services.projector.view.View`. Requests about
tasks and prompt versions are judged by :mod:`shared.decisions`, the functions the
optimizer and the PR publisher use too (docs/adr/0006-decide-once.md); the read model's
own rules (a stage event never revives an ended job, …) stay here. No I/O: :func:`wanted`
names the rows a batch reads, ``adapters`` loads and writes them. Timestamps come from the
envelope, never the clock, so a replay produces identical rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.projector import domain
from services.projector import webhooks as webhook_fold
from services.projector.view import Row, View, Wanted
from shared.decisions import (
    TaskLife,
    Verdict,
    VersionStatus,
    decide_key_created,
    decide_key_revoked,
    decide_prompt_activated,
    decide_task_created,
    decide_task_deleted,
    decide_task_updated,
    decide_version_created,
)
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


def _want_key_created(w: Wanted, f: Fact, e: ky.ApiKeyCreated) -> None:
    w.key_ids.add(str(e.key_id))
    w.key_hashes.add(e.key_hash)
    w.all_keys |= e.bootstrap  # counts every key


def _want_key_revoked(w: Wanted, f: Fact, e: ky.ApiKeyRevoked) -> None:
    w.key_ids.add(str(e.key_id))
    w.all_keys |= e.keep_last_admin  # counts the active admin keys


def _want_task(w: Wanted, f: Fact, e: tk.TaskCreated | tk.TaskUpdated | tk.TaskDeleted) -> None:
    w.task_ids.add(str(e.task_id))


def _want_feedback(w: Wanted, f: Fact, e: fb.FeedbackRecorded) -> None:
    if e.source != "seed":
        # Live feedback counts on its task's row once: is it new, and past the cut-off?
        w.task_ids.add(str(e.task_id))
        w.feedback_ids.add(str(e.feedback_id))


def _want_job(w: Wanted, f: Fact, e: Any) -> None:
    """The job's row, and whether its history holds this event already."""
    if (job_id := e.job_id) is not None:
        w.job_ids.add(str(job_id))
        w.event_ids.add(str(f.envelope.id))


def _want_job_requested(w: Wanted, f: Fact, e: jb.JobRequested) -> None:
    w.task_ids.add(str(e.task_id))
    _want_job(w, f, e)


def _want_version_created(w: Wanted, f: Fact, e: prompts.PromptVersionCreated) -> None:
    w.version_ids.add(str(e.prompt_version_id))
    w.numbers_of.add(str(e.task_id))
    _want_job(w, f, e)


def _want_activated(w: Wanted, f: Fact, e: prompts.PromptActivated) -> None:
    w.version_ids.add(str(e.prompt_version_id))
    w.active_versions_of.add(str(e.task_id))


def _want_webhook(w: Wanted, f: Fact, e: Event) -> None:
    webhook_fold.want(w, e)


def _outcome(
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


# --- keys -------------------------------------------------------------------------------


def on_key_created(view: View, f: Fact, e: ky.ApiKeyCreated) -> None:
    keys = view.api_keys
    assert view.all_keys or not e.bootstrap, "a bootstrap key needs every key loaded"
    known = keys.get(str(e.key_id)) is not None or any(
        r["key_hash"] == e.key_hash for r in keys.rows.values()
    )
    verdict = decide_key_created(known=known, bootstrap=e.bootstrap, any_key=bool(keys.rows))
    if verdict.reason == "keys_exist":
        _outcome(view, f, "rejected", e.key_id, verdict.reason, verdict.detail)
        return
    values = {
        "id": str(e.key_id),
        "name": e.name,
        "key_hash": e.key_hash,
        "prefix": e.prefix,
        "status": "active",
        "bootstrap": e.bootstrap,
        "created_at": f.time,
        "role": e.role,
    }
    if verdict.accepted:
        keys.insert(values)
    else:  # a copy of the request (or a clash): INSERT … ON CONFLICT DO NOTHING inserts nothing
        keys.bind((values["id"],), values)
    _outcome(view, f, "accepted", e.key_id)


def on_key_revoked(view: View, f: Fact, e: ky.ApiKeyRevoked) -> None:
    # The API's key ring asks the same function: every process reaches the same verdict.
    key_id = str(e.key_id)
    row = view.api_keys.get(key_id)
    verdict = decide_key_revoked(
        active=row is not None and row["status"] == "active",
        last_active_admin=e.keep_last_admin and _last_active_admin(view, key_id),
        keep_last_admin=e.keep_last_admin,
    )
    if verdict.reason == "last_admin":
        _outcome(view, f, "rejected", e.key_id, verdict.reason, verdict.detail)
        return
    values = {"status": "revoked", "revoked_at": f.time}
    if verdict.accepted:
        view.api_keys.update((key_id,), **values)
    else:  # revoked already, or unknown: the UPDATE changes no row
        view.api_keys.bind((key_id,), values)
    _outcome(view, f, "accepted", e.key_id)


def _is_active_admin(row: Row) -> bool:
    return bool(row["status"] == "active" and row["role"] == "admin")


def _last_active_admin(view: View, key_id: str) -> bool:
    assert view.all_keys, "the last-admin rule needs every key loaded"
    row = view.api_keys.get(key_id)
    if row is None or not _is_active_admin(row):
        return False
    return sum(_is_active_admin(r) for r in view.api_keys.rows.values()) == 1


# --- tasks ------------------------------------------------------------------------------


def _task_life(row: Row | None) -> TaskLife:
    if row is None:
        return TaskLife.ABSENT
    return TaskLife.DELETED if row["deleted"] else TaskLife.LIVE


def _rejected(view: View, f: Fact, entity_id: object, verdict: Verdict) -> None:
    _outcome(view, f, "rejected", entity_id, verdict.reason, verdict.detail)


def on_task_created(view: View, f: Fact, e: tk.TaskCreated) -> None:
    # Racing creates of one name derive the same task id (name + generation), so they
    # meet on one partition and the first wins. A check across tasks would depend on
    # the order partitions are read in, and replay would not be exact.
    verdict = decide_task_created(_task_life(view.tasks.get(str(e.task_id))), e.name)
    if verdict.rejected:
        _rejected(view, f, e.task_id, verdict)
        return
    settings = e.model_dump(mode="json", exclude={"task_id", "request_id", "git_token_encrypted"})
    view.tasks.insert(
        {
            "id": str(e.task_id),
            "name": e.name,
            "name_key": e.name.strip().casefold(),
            "settings": settings,
            "git_token_encrypted": e.git_token_encrypted,
            "deleted": False,
            "created_at": f.time,
            "updated_at": f.time,
            "last_job_cutoff": -1,
            "live_feedback": 0,
            "live_since_cutoff": 0,
        }
    )
    # Feedback may have been stored before its task existed; it counts from now on.
    view.feedback_counts.recount_all.add(str(e.task_id))
    _outcome(view, f, "accepted", e.task_id)


def on_task_updated(view: View, f: Fact, e: tk.TaskUpdated) -> None:
    row = view.tasks.get(str(e.task_id))
    verdict = decide_task_updated(_task_life(row))
    if verdict.rejected or row is None:
        _rejected(view, f, e.task_id, verdict)
        return
    changes = dict(e.changes)
    values: dict[str, Any] = {"updated_at": f.time}
    if "git_token_encrypted" in changes:
        values["git_token_encrypted"] = changes.pop("git_token_encrypted")
    if "name" in changes:
        values["name"] = changes["name"]
        values["name_key"] = str(changes["name"]).strip().casefold()
    values["settings"] = {**row["settings"], **changes}
    view.tasks.update((str(e.task_id),), **values)
    _outcome(view, f, "accepted", e.task_id)


def on_task_deleted(view: View, f: Fact, e: tk.TaskDeleted) -> None:
    # No outcome row: the API does not wait on a deletion (it checked the task exists). A
    # second deletion changes nothing, not even ``updated_at``.
    if decide_task_deleted(_task_life(view.tasks.get(str(e.task_id)))).accepted:
        view.tasks.update((str(e.task_id),), deleted=True, updated_at=f.time)


# --- feedback ---------------------------------------------------------------------------


def on_feedback(view: View, f: Fact, e: fb.FeedbackRecorded) -> None:
    task_id = str(e.task_id)
    feedback_id = str(e.feedback_id)
    # Only a new id counts, and on a task that exists (one created later is counted then).
    live = e.source != "seed" and view.feedback.is_new(feedback_id)
    if live and (task := view.tasks.get(task_id)) is not None:
        view.feedback_counts.add(task_id, after_cutoff=f.offset > task["last_job_cutoff"])
    view.feedback.add(
        {
            "id": feedback_id,
            "task_id": task_id,
            "inputs": e.inputs,
            "output": e.output,
            "score": e.score,
            "source": e.source,
            "metadata": e.metadata,
            "created_at": f.envelope.time,
            "log_offset": f.offset,
        }
    )


def on_seeds(view: View, f: Fact, e: fb.SeedsUploaded) -> None:
    for seed in e.seeds:
        view.feedback.add(
            {
                "id": str(seed.feedback_id),
                "task_id": str(e.task_id),
                "inputs": seed.inputs,
                "output": seed.output,
                "score": seed.score,
                "source": "seed",
                "metadata": seed.metadata,
                "created_at": f.time,
                "log_offset": f.offset,
            }
        )


# --- jobs -------------------------------------------------------------------------------


def _history(view: View, f: Fact, job_id: object) -> bool:
    """Append the event to the job's history; False when it was seen already (redelivery)."""
    env = f.envelope
    return view.job_events.insert_new(
        {
            "event_id": str(env.id),
            "job_id": str(job_id),
            "topic": f.topic,
            "partition": f.partition,
            "log_offset": f.offset,
            "type": env.type,
            "source": env.source,
            "time": env.time,
            "correlation_id": env.correlation_id,
            "causation_id": env.causation_id,
            "data": env.data.model_dump(mode="json"),
        }
    )


def _job(view: View, job_id: object) -> Row | None:
    return view.jobs.get(str(job_id))


def _meta(row: Row | None) -> dict[str, Any]:
    return dict(row["job_metadata"]) if row is not None else {}


def on_optimization_requested(view: View, f: Fact, e: jb.OptimizationRequested) -> None:
    """Nothing to show until the optimizer decides (JobRequested or OptimizationRejected)."""


def on_optimization_rejected(view: View, f: Fact, e: jb.OptimizationRejected) -> None:
    _outcome(view, f, "rejected", e.active_job_id, e.reason, e.detail)


def on_job_requested(view: View, f: Fact, e: jb.JobRequested) -> None:
    if not _history(view, f, e.job_id):
        return
    view.jobs.insert_new(
        {
            "id": str(e.job_id),
            "task_id": str(e.task_id),
            "status": domain.PENDING,
            "triggered_by": e.triggered_by,
            "feedback_count": e.feedback_count,
            "job_metadata": {},
            "progress_step": "queued",
            "created_at": f.time,
            "log_offset": e.log_offset,
            "attempt": 0,
        }
    )
    if view.tasks.update((str(e.task_id),), last_job_cutoff=e.log_offset):
        view.feedback_counts.recount_since.add(str(e.task_id))
    _outcome(view, f, "accepted", e.job_id)


def _stage(view: View, f: Fact, job_id: object, status: str | None, step: str, **values: Any) -> None:
    """Apply a stage event to an active job (only an active one: a late event revives nothing)."""
    if not _history(view, f, job_id):
        return
    row = _job(view, job_id)
    if row is None or not domain.stage_applies(row["status"]):
        return
    if status is not None:
        values["status"] = status
    view.jobs.update((str(job_id),), progress_step=step, **values)


def on_job_started(view: View, f: Fact, e: jb.JobStarted) -> None:
    row = _job(view, e.job_id)
    started = row["started_at"] if row is not None and row["started_at"] else f.time
    meta = {**_meta(row), "teacher_model": e.teacher_model, "judge_model": e.judge_model}
    meta["attempt"] = e.attempt
    _stage(
        view,
        f,
        e.job_id,
        domain.RUNNING,
        "loading_data",
        started_at=started,
        attempt=e.attempt,
        job_metadata=meta,
    )


def on_job_evaluating(view: View, f: Fact, e: jb.JobEvaluating) -> None:
    sizes = {"train_size": e.train_size, "val_size": e.val_size, "dataset_hash": e.dataset_hash}
    sizes["seed_count"] = e.seed_count
    meta = {**_meta(_job(view, e.job_id)), **sizes}
    _stage(
        view,
        f,
        e.job_id,
        domain.EVALUATING,
        "evaluating_baseline",
        feedback_count=e.feedback_count,
        job_metadata=meta,
    )


def on_job_compiling(view: View, f: Fact, e: jb.JobCompiling) -> None:
    meta = {**_meta(_job(view, e.job_id)), "baseline_score": e.baseline_score, "trials_completed": 0}
    _stage(view, f, e.job_id, domain.COMPILING, "compiling", job_metadata=meta)


def on_job_exporting(view: View, f: Fact, e: jb.JobExporting) -> None:
    _stage(view, f, e.job_id, None, f"exporting: re-scoring {e.candidates} candidates")


def on_trial(view: View, f: Fact, e: jb.JobTrialCompleted) -> None:
    meta = {
        **_meta(_job(view, e.job_id)),
        "trials_completed": e.trial,
        "best_score_so_far": e.best_score,
        "llm_calls": e.llm_calls,
        "cost_usd": e.cost_usd,
    }
    _stage(view, f, e.job_id, None, domain.trial_step(e.trial, e.total_trials), job_metadata=meta)


def on_job_compiled(view: View, f: Fact, e: jb.JobCompiled) -> None:
    meta = {**_meta(_job(view, e.job_id)), **e.job_metadata}
    step = "publishing_pr" if e.publish else "compiled"
    _stage(view, f, e.job_id, None, step, job_metadata=meta, prompt_version_id=str(e.prompt_version_id))


def _finish(
    view: View, f: Fact, job_id: object, status: str, applies: Callable[[str], bool], **values: Any
) -> bool:
    if not _history(view, f, job_id):
        return False
    row = _job(view, job_id)
    if row is None or not applies(row["status"]):
        return False
    view.jobs.update((str(job_id),), status=status, completed_at=f.time, **values)
    return True


def on_job_succeeded(view: View, f: Fact, e: jb.JobSucceeded) -> None:
    _finish(view, f, e.job_id, domain.SUCCESS, domain.stage_applies, progress_step=e.progress_step)


def on_job_failed(view: View, f: Fact, e: jb.JobFailed) -> None:
    meta = {**_meta(_job(view, e.job_id)), **e.job_metadata}
    _finish(
        view,
        f,
        e.job_id,
        domain.FAILED,
        domain.stage_applies,
        progress_step=e.progress_step,
        error_message=e.error_message,
        job_metadata=meta,
    )


def on_cancel_requested(view: View, f: Fact, e: jb.JobCancelRequested) -> None:
    _stage(view, f, e.job_id, None, "cancelling")


# --- pull requests ----------------------------------------------------------------------


def on_pr_retry(view: View, f: Fact, e: prs.PrRetryRequested) -> None:
    if _history(view, f, e.job_id):
        view.jobs.update((str(e.job_id),), progress_step="retrying_pr")


def on_pr_created(view: View, f: Fact, e: prs.PrCreated) -> None:
    applied = _finish(
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
        _outcome(view, f, "accepted", e.job_id)


def on_pr_failed(view: View, f: Fact, e: prs.PrFailed) -> None:
    applied = _finish(
        view,
        f,
        e.job_id,
        domain.PR_FAILED,
        domain.pr_failed_applies,
        progress_step="pr_failed",
        error_message=e.reason,
    )
    if applied:
        _outcome(view, f, "rejected", e.job_id, "pr_failed", e.reason)


# --- prompts ----------------------------------------------------------------------------


def on_version_created(view: View, f: Fact, e: prompts.PromptVersionCreated) -> None:
    if e.job_id is not None:
        _history(view, f, e.job_id)
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
        _rejected(view, f, e.prompt_version_id, verdict)
        return
    active = [k for k, r in versions.rows.items() if r["task_id"] == task_id and r["status"] == "active"]
    for key in active:
        versions.update(key, status="archived")
    versions.update((str(e.prompt_version_id),), status="active")
    _outcome(view, f, "accepted", e.prompt_version_id)


def on_import_attempted(view: View, f: Fact, e: prompts.PromptImportAttempted) -> None:
    """Nothing to store: an import's effect is the version and activation events before it.

    A failed import is visible in the log (and the PR publisher's log); the read model does
    not keep it yet.
    """


# --- operations -------------------------------------------------------------------------


def on_heartbeat(view: View, f: Fact, e: ops.ServiceHeartbeat) -> None:
    view.heartbeats.put(
        {
            "instance": e.instance,
            "service": e.service,
            "pid": e.pid,
            "time": f.time,
            "active_jobs": e.active_jobs,
        }
    )
    for loop in e.loops:
        view.service_loops.put(
            {
                "instance": e.instance,
                "loop": loop.name,
                "time": f.time,
                "alive": loop.alive,
                "seconds_since_progress": loop.seconds_since_progress,
                "busy_seconds": loop.busy_seconds,
                "failures": loop.failures,
            }
        )


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
    **dict.fromkeys(_OF_A_JOB, _want_job),
    **dict.fromkeys(webhook_fold.HANDLERS, _want_webhook),
    ky.ApiKeyCreated: _want_key_created,
    ky.ApiKeyRevoked: _want_key_revoked,
    tk.TaskCreated: _want_task,
    tk.TaskUpdated: _want_task,
    tk.TaskDeleted: _want_task,
    fb.FeedbackRecorded: _want_feedback,
    jb.JobRequested: _want_job_requested,
    prompts.PromptVersionCreated: _want_version_created,
    prompts.PromptActivated: _want_activated,
}
