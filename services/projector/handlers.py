"""One projection function per event type, listed in ``HANDLERS`` at the bottom.

Each runs inside the batch's transaction. Timestamps come from the envelope, never the
clock, so a replay produces identical rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projector import domain
from services.projector.adapters import insert_ignore, upsert
from shared.events import feedback as fb
from shared.events import jobs as jb
from shared.events import keys as ky
from shared.events import ops, prompts, prs
from shared.events import tasks as tk
from shared.events.base import Event
from shared.events.envelope import Envelope
from shared.readmodel import tables as t


@dataclass(frozen=True)
class Ctx:
    """Where the event sits and the transaction it is applied in."""

    conn: AsyncConnection
    envelope: Envelope
    topic: str
    partition: int
    offset: int


async def _outcome(
    ctx: Ctx, outcome: str, entity_id: object = None, reason: str | None = None, detail: str | None = None
) -> None:
    """Record how the request that caused this event was decided (the API waits on it)."""
    request_id = ctx.envelope.correlation_id
    if request_id is None:
        return
    values = {
        "request_id": request_id,
        "outcome": outcome,
        "entity_id": str(entity_id) if entity_id is not None else None,
        "reason": reason,
        "detail": detail,
    }
    # The first decision is the answer; later events of the same request (a job's own
    # end, a PR outcome) must not rewrite it.
    await insert_ignore(ctx.conn, t.request_outcomes, values)


# --- keys -------------------------------------------------------------------------------


async def on_key_created(ctx: Ctx, e: ky.ApiKeyCreated) -> None:
    if e.bootstrap:
        existing = await ctx.conn.scalar(select(func.count()).select_from(t.api_keys))
        if existing:
            await _outcome(ctx, "rejected", e.key_id, "keys_exist", "an API key exists already")
            return
    await insert_ignore(
        ctx.conn,
        t.api_keys,
        {
            "id": str(e.key_id),
            "name": e.name,
            "key_hash": e.key_hash,
            "prefix": e.prefix,
            "status": "active",
            "bootstrap": e.bootstrap,
            "created_at": ctx.envelope.time,
            "role": e.role,
        },
    )
    await _outcome(ctx, "accepted", e.key_id)


async def on_key_revoked(ctx: Ctx, e: ky.ApiKeyRevoked) -> None:
    # The API's key ring folds the same rule: the last active admin key stays, so the
    # installation can always be administered (keys topic order decides racing revocations).
    if e.keep_last_admin and await _last_active_admin(ctx.conn, str(e.key_id)):
        await _outcome(ctx, "rejected", e.key_id, "last_admin", "the last active admin key cannot be revoked")
        return
    await ctx.conn.execute(
        update(t.api_keys)
        .where(t.api_keys.c.id == str(e.key_id), t.api_keys.c.status == "active")
        .values(status="revoked", revoked_at=ctx.envelope.time)
    )
    await _outcome(ctx, "accepted", e.key_id)


async def _last_active_admin(conn: AsyncConnection, key_id: str) -> bool:
    active_admin = (t.api_keys.c.status == "active") & (t.api_keys.c.role == "admin")
    if await conn.scalar(select(t.api_keys.c.id).where(t.api_keys.c.id == key_id, active_admin)) is None:
        return False
    return await conn.scalar(select(func.count()).select_from(t.api_keys).where(active_admin)) == 1


# --- tasks ------------------------------------------------------------------------------


async def on_task_created(ctx: Ctx, e: tk.TaskCreated) -> None:
    # Racing creates of one name derive the same task id (name + generation), so they
    # meet on one partition and the first wins. A check across tasks would depend on
    # the order partitions are read in, and replay would not be exact.
    exists = await ctx.conn.scalar(select(t.tasks.c.id).where(t.tasks.c.id == str(e.task_id)))
    name_key = e.name.strip().casefold()
    if exists:
        await _outcome(ctx, "rejected", e.task_id, "duplicate_name", f"a task named {e.name!r} exists")
        return
    settings = e.model_dump(mode="json", exclude={"task_id", "request_id", "git_token_encrypted"})
    await ctx.conn.execute(
        t.tasks.insert().values(
            id=str(e.task_id),
            name=e.name,
            name_key=name_key,
            settings=settings,
            git_token_encrypted=e.git_token_encrypted,
            deleted=False,
            created_at=ctx.envelope.time,
            updated_at=ctx.envelope.time,
            last_job_cutoff=-1,
        )
    )
    await _outcome(ctx, "accepted", e.task_id)


async def on_task_updated(ctx: Ctx, e: tk.TaskUpdated) -> None:
    row = (await ctx.conn.execute(select(t.tasks).where(t.tasks.c.id == str(e.task_id)))).first()
    if row is None or row.deleted:
        await _outcome(ctx, "rejected", e.task_id, "task_missing", "the task does not exist")
        return
    changes = dict(e.changes)
    values: dict[str, Any] = {"updated_at": ctx.envelope.time}
    if "git_token_encrypted" in changes:
        values["git_token_encrypted"] = changes.pop("git_token_encrypted")
    if "name" in changes:
        values["name"] = changes["name"]
        values["name_key"] = str(changes["name"]).strip().casefold()
    values["settings"] = {**row.settings, **changes}
    await ctx.conn.execute(update(t.tasks).where(t.tasks.c.id == str(e.task_id)).values(**values))
    await _outcome(ctx, "accepted", e.task_id)


async def on_task_deleted(ctx: Ctx, e: tk.TaskDeleted) -> None:
    await ctx.conn.execute(
        update(t.tasks)
        .where(t.tasks.c.id == str(e.task_id))
        .values(deleted=True, updated_at=ctx.envelope.time)
    )


# --- feedback ---------------------------------------------------------------------------


async def on_feedback(ctx: Ctx, e: fb.FeedbackRecorded) -> None:
    await insert_ignore(
        ctx.conn,
        t.feedback,
        {
            "id": str(e.feedback_id),
            "task_id": str(e.task_id),
            "inputs": e.inputs,
            "output": e.output,
            "score": e.score,
            "source": e.source,
            "metadata": e.metadata,
            "created_at": ctx.envelope.time,
            "log_offset": ctx.offset,
        },
    )


async def on_seeds(ctx: Ctx, e: fb.SeedsUploaded) -> None:
    for seed in e.seeds:
        await insert_ignore(
            ctx.conn,
            t.feedback,
            {
                "id": str(seed.feedback_id),
                "task_id": str(e.task_id),
                "inputs": seed.inputs,
                "output": seed.output,
                "score": seed.score,
                "source": "seed",
                "metadata": seed.metadata,
                "created_at": ctx.envelope.time,
                "log_offset": ctx.offset,
            },
        )


# --- jobs -------------------------------------------------------------------------------


async def _history(ctx: Ctx, job_id: object) -> bool:
    """Append the event to the job's history; False when it was seen already (redelivery)."""
    env = ctx.envelope
    return await insert_ignore(
        ctx.conn,
        t.job_events,
        {
            "event_id": str(env.id),
            "job_id": str(job_id),
            "topic": ctx.topic,
            "partition": ctx.partition,
            "log_offset": ctx.offset,
            "type": env.type,
            "source": env.source,
            "time": env.time,
            "correlation_id": env.correlation_id,
            "causation_id": env.causation_id,
            "data": env.data.model_dump(mode="json"),
        },
    )


async def _job(ctx: Ctx, job_id: object) -> Any:
    return (await ctx.conn.execute(select(t.jobs).where(t.jobs.c.id == str(job_id)))).first()


async def _set_job(ctx: Ctx, job_id: object, **values: Any) -> None:
    await ctx.conn.execute(update(t.jobs).where(t.jobs.c.id == str(job_id)).values(**values))


async def on_optimization_requested(ctx: Ctx, e: jb.OptimizationRequested) -> None:
    """Nothing to show until the optimizer decides (JobRequested or OptimizationRejected)."""


async def on_optimization_rejected(ctx: Ctx, e: jb.OptimizationRejected) -> None:
    await _outcome(ctx, "rejected", e.active_job_id, e.reason, e.detail)


async def on_job_requested(ctx: Ctx, e: jb.JobRequested) -> None:
    if not await _history(ctx, e.job_id):
        return
    await insert_ignore(
        ctx.conn,
        t.jobs,
        {
            "id": str(e.job_id),
            "task_id": str(e.task_id),
            "status": domain.PENDING,
            "triggered_by": e.triggered_by,
            "feedback_count": e.feedback_count,
            "job_metadata": {},
            "progress_step": "queued",
            "created_at": ctx.envelope.time,
            "log_offset": e.log_offset,
            "attempt": 0,
        },
    )
    await ctx.conn.execute(
        update(t.tasks).where(t.tasks.c.id == str(e.task_id)).values(last_job_cutoff=e.log_offset)
    )
    await _outcome(ctx, "accepted", e.job_id)


async def _stage(ctx: Ctx, job_id: object, status: str | None, step: str, **values: Any) -> Any:
    """Apply a stage event to an active job; returns the row, or None when it does not apply."""
    if not await _history(ctx, job_id):
        return None
    row = await _job(ctx, job_id)
    if row is None or not domain.stage_applies(row.status):
        return None
    if status is not None:
        values["status"] = status
    await _set_job(ctx, job_id, progress_step=step, **values)
    return row


async def on_job_started(ctx: Ctx, e: jb.JobStarted) -> None:
    row = await _job(ctx, e.job_id)
    started = row.started_at if row is not None and row.started_at else ctx.envelope.time
    meta = {
        **(row.job_metadata if row else {}),
        "teacher_model": e.teacher_model,
        "judge_model": e.judge_model,
    }
    meta["attempt"] = e.attempt
    await _stage(
        ctx,
        e.job_id,
        domain.RUNNING,
        "loading_data",
        started_at=started,
        attempt=e.attempt,
        job_metadata=meta,
    )


async def on_job_evaluating(ctx: Ctx, e: jb.JobEvaluating) -> None:
    row = await _job(ctx, e.job_id)
    sizes = {"train_size": e.train_size, "val_size": e.val_size, "dataset_hash": e.dataset_hash}
    sizes["seed_count"] = e.seed_count
    meta = {**(row.job_metadata if row else {}), **sizes}
    await _stage(
        ctx,
        e.job_id,
        domain.EVALUATING,
        "evaluating_baseline",
        feedback_count=e.feedback_count,
        job_metadata=meta,
    )


async def on_job_compiling(ctx: Ctx, e: jb.JobCompiling) -> None:
    row = await _job(ctx, e.job_id)
    meta = {**(row.job_metadata if row else {}), "baseline_score": e.baseline_score, "trials_completed": 0}
    await _stage(ctx, e.job_id, domain.COMPILING, "compiling", job_metadata=meta)


async def on_trial(ctx: Ctx, e: jb.JobTrialCompleted) -> None:
    row = await _job(ctx, e.job_id)
    meta = {
        **(row.job_metadata if row else {}),
        "trials_completed": e.trial,
        "best_score_so_far": e.best_score,
        "llm_calls": e.llm_calls,
        "cost_usd": e.cost_usd,
    }
    await _stage(ctx, e.job_id, None, domain.trial_step(e.trial, e.total_trials), job_metadata=meta)


async def on_job_compiled(ctx: Ctx, e: jb.JobCompiled) -> None:
    row = await _job(ctx, e.job_id)
    meta = {**(row.job_metadata if row else {}), **e.job_metadata}
    step = "publishing_pr" if e.publish else "compiled"
    await _stage(ctx, e.job_id, None, step, job_metadata=meta, prompt_version_id=str(e.prompt_version_id))


async def _finish(
    ctx: Ctx, job_id: object, status: str, applies: Callable[[str], bool], **values: Any
) -> bool:
    if not await _history(ctx, job_id):
        return False
    row = await _job(ctx, job_id)
    if row is None or not applies(row.status):
        return False
    await _set_job(ctx, job_id, status=status, completed_at=ctx.envelope.time, **values)
    return True


async def on_job_succeeded(ctx: Ctx, e: jb.JobSucceeded) -> None:
    await _finish(ctx, e.job_id, domain.SUCCESS, domain.stage_applies, progress_step=e.progress_step)


async def on_job_failed(ctx: Ctx, e: jb.JobFailed) -> None:
    row = await _job(ctx, e.job_id)
    meta = {**(row.job_metadata if row else {}), **e.job_metadata}
    await _finish(
        ctx,
        e.job_id,
        domain.FAILED,
        domain.stage_applies,
        progress_step=e.progress_step,
        error_message=e.error_message,
        job_metadata=meta,
    )


async def on_cancel_requested(ctx: Ctx, e: jb.JobCancelRequested) -> None:
    await _stage(ctx, e.job_id, None, "cancelling")


# --- pull requests ----------------------------------------------------------------------


async def on_pr_retry(ctx: Ctx, e: prs.PrRetryRequested) -> None:
    if await _history(ctx, e.job_id):
        await _set_job(ctx, e.job_id, progress_step="retrying_pr")


async def on_pr_created(ctx: Ctx, e: prs.PrCreated) -> None:
    applied = await _finish(
        ctx,
        e.job_id,
        domain.SUCCESS,
        domain.pr_created_applies,
        pr_url=e.pr_url,
        progress_step="pr_created",
        error_message=None,
    )
    if applied:
        await _outcome(ctx, "accepted", e.job_id)


async def on_pr_failed(ctx: Ctx, e: prs.PrFailed) -> None:
    applied = await _finish(
        ctx,
        e.job_id,
        domain.PR_FAILED,
        domain.pr_failed_applies,
        progress_step="pr_failed",
        error_message=e.reason,
    )
    if applied:
        await _outcome(ctx, "rejected", e.job_id, "pr_failed", e.reason)


# --- prompts ----------------------------------------------------------------------------


async def on_version_created(ctx: Ctx, e: prompts.PromptVersionCreated) -> None:
    if e.job_id is not None:
        await _history(ctx, e.job_id)
    exists = await ctx.conn.scalar(
        select(t.prompt_versions.c.id).where(t.prompt_versions.c.id == str(e.prompt_version_id))
    )
    if exists:
        return
    number = await ctx.conn.scalar(
        select(func.coalesce(func.max(t.prompt_versions.c.version_number), 0)).where(
            t.prompt_versions.c.task_id == str(e.task_id)
        )
    )
    await ctx.conn.execute(
        t.prompt_versions.insert().values(
            id=str(e.prompt_version_id),
            task_id=str(e.task_id),
            job_id=str(e.job_id) if e.job_id else None,
            version_number=int(number or 0) + 1,
            prompt_text=e.prompt_text,
            demos=e.demos,
            dspy_state=e.dspy_state,
            eval_score=e.eval_score,
            baseline_score=e.baseline_score,
            optimized_score=e.optimized_score,
            status="draft",
            optimizer=e.optimizer,
            dspy_version=e.dspy_version,
            created_at=ctx.envelope.time,
            source=e.source,
            test_score=e.test_score,
        )
    )


async def on_activated(ctx: Ctx, e: prompts.PromptActivated) -> None:
    versions = t.prompt_versions
    status = await ctx.conn.scalar(
        select(versions.c.status).where(
            versions.c.id == str(e.prompt_version_id), versions.c.task_id == str(e.task_id)
        )
    )
    if status != "draft":
        detail = "the version does not exist" if status is None else f"the version is {status}, not a draft"
        await _outcome(ctx, "rejected", e.prompt_version_id, "not_draft", detail)
        return
    await ctx.conn.execute(
        update(versions)
        .where(versions.c.task_id == str(e.task_id), versions.c.status == "active")
        .values(status="archived")
    )
    await ctx.conn.execute(
        update(versions).where(versions.c.id == str(e.prompt_version_id)).values(status="active")
    )
    await _outcome(ctx, "accepted", e.prompt_version_id)


async def on_import_attempted(ctx: Ctx, e: prompts.PromptImportAttempted) -> None:
    """Nothing to store: an import's effect is the version and activation events before it.

    A failed import is visible in the log (and the PR publisher's log); the read model does
    not keep it yet.
    """


# --- operations -------------------------------------------------------------------------


async def on_heartbeat(ctx: Ctx, e: ops.ServiceHeartbeat) -> None:
    values = {
        "instance": e.instance,
        "service": e.service,
        "pid": e.pid,
        "time": ctx.envelope.time,
        "active_jobs": e.active_jobs,
    }
    await upsert(ctx.conn, t.heartbeats, values, ["instance"])
    for loop in e.loops:
        report = {
            "instance": e.instance,
            "loop": loop.name,
            "time": ctx.envelope.time,
            "alive": loop.alive,
            "seconds_since_progress": loop.seconds_since_progress,
            "busy_seconds": loop.busy_seconds,
            "failures": loop.failures,
        }
        await upsert(ctx.conn, t.service_loops, report, ["instance", "loop"])


Handler = Callable[[Ctx, Any], Awaitable[None]]

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
}
