"""The projector's fold of job events: a job's row and its history.

Every event of a job is appended to its history once (a redelivery changes nothing), and
moves the job's row only as :mod:`services.projector.domain` allows: a late stage event
never revives an ended job. ``history`` and ``finish`` serve the PR and prompt events of
a job too (``prs``, ``prompts``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from services.projector import domain
from services.projector.outcomes import outcome
from shared.events import jobs as jb

if TYPE_CHECKING:
    from services.projector.handlers import Fact
    from services.projector.view import Row, View, Wanted


def want_job(w: Wanted, f: Fact, e: Any) -> None:
    """The job's row, and whether its history holds this event already."""
    if (job_id := e.job_id) is not None:
        w.job_ids.add(str(job_id))
        w.event_ids.add(str(f.envelope.id))


def want_job_requested(w: Wanted, f: Fact, e: jb.JobRequested) -> None:
    w.task_ids.add(str(e.task_id))
    want_job(w, f, e)


def history(view: View, f: Fact, job_id: object) -> bool:
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
    outcome(view, f, "rejected", e.active_job_id, e.reason, e.detail)


def on_job_requested(view: View, f: Fact, e: jb.JobRequested) -> None:
    if not history(view, f, e.job_id):
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
    outcome(view, f, "accepted", e.job_id)


def _stage(view: View, f: Fact, job_id: object, status: str | None, step: str, **values: Any) -> None:
    """Apply a stage event to an active job (only an active one: a late event revives nothing)."""
    if not history(view, f, job_id):
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


def finish(
    view: View, f: Fact, job_id: object, status: str, applies: Callable[[str], bool], **values: Any
) -> bool:
    """End the job with ``status`` if ``applies`` to its status; False when it did not (or a redelivery)."""
    if not history(view, f, job_id):
        return False
    row = _job(view, job_id)
    if row is None or not applies(row["status"]):
        return False
    view.jobs.update((str(job_id),), status=status, completed_at=f.time, **values)
    return True


def on_job_succeeded(view: View, f: Fact, e: jb.JobSucceeded) -> None:
    finish(view, f, e.job_id, domain.SUCCESS, domain.stage_applies, progress_step=e.progress_step)


def on_job_failed(view: View, f: Fact, e: jb.JobFailed) -> None:
    meta = {**_meta(_job(view, e.job_id)), **e.job_metadata}
    finish(
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
