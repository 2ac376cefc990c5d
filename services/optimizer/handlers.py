"""The trigger fold: one function per event type, listed in ``HANDLERS`` at the bottom.

Each handler updates the local state inside the batch's transaction and returns the
events the optimizer decides to emit. They are appended (and acknowledged) before the
transaction commits, so a crash in between re-derives the same events (same ids) on
redelivery and every consumer dedupes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.optimizer import domain
from services.optimizer.adapters import StateStore
from shared.events import feedback as fb
from shared.events import jobs as jb
from shared.events import prompts, prs
from shared.events import tasks as tk
from shared.events.base import Event
from shared.events.envelope import Envelope


@dataclass
class Ctx:
    conn: AsyncConnection
    envelope: Envelope
    partition: int
    offset: int
    state: domain.TaskState
    settings: dict[str, Any]
    cancelled: set[uuid.UUID]


async def _decided(ctx: Ctx, decisions: list[Event]) -> list[Event]:
    """Apply our own decisions to the state at once and record the jobs they create."""
    for event in decisions:
        ctx.state = domain.evolve(ctx.state, event, ctx.offset)
        if isinstance(event, jb.JobRequested):
            await StateStore.add_job(
                ctx.conn,
                job_id=str(event.job_id),
                task_id=str(event.task_id),
                partition=ctx.partition,
                log_offset=event.log_offset,
                triggered_by=event.triggered_by,
                correlation_id=ctx.envelope.correlation_id or str(event.job_id),
            )
    return decisions


def _accepted(ctx: Ctx) -> bool:
    """Whether the request being handled took effect (``ctx.state`` has folded it already).

    The verdict is :mod:`shared.decisions`' via ``domain.evolve``; a rejected request
    changes nothing here either.
    """
    return ctx.state.accepted_at == ctx.offset


async def on_task_created(ctx: Ctx, e: tk.TaskCreated) -> list[Event]:
    if _accepted(ctx):
        ctx.settings = {**ctx.settings, **e.model_dump(mode="json", exclude={"task_id", "request_id"})}
    return []


async def on_task_updated(ctx: Ctx, e: tk.TaskUpdated) -> list[Event]:
    if _accepted(ctx):
        ctx.settings = {**ctx.settings, **e.changes}
    return []


async def on_feedback(ctx: Ctx, e: fb.FeedbackRecorded) -> list[Event]:
    await StateStore.add_example(
        ctx.conn,
        id=str(e.feedback_id),
        task_id=str(e.task_id),
        inputs=e.inputs,
        output=e.output,
        score=e.score,
        source=e.source,
        log_offset=ctx.offset,
    )
    return await _decided(ctx, domain.decide_on_feedback(ctx.state, ctx.offset))


async def on_seeds(ctx: Ctx, e: fb.SeedsUploaded) -> list[Event]:
    for seed in e.seeds:
        await StateStore.add_example(
            ctx.conn,
            id=str(seed.feedback_id),
            task_id=str(e.task_id),
            inputs=seed.inputs,
            output=seed.output,
            score=seed.score,
            source="seed",
            log_offset=ctx.offset,
        )
    return []


async def on_optimization_requested(ctx: Ctx, e: jb.OptimizationRequested) -> list[Event]:
    return await _decided(ctx, domain.decide_on_request(ctx.state, e, ctx.offset))


async def on_job_requested(ctx: Ctx, e: jb.JobRequested) -> list[Event]:
    # Normally decided (and recorded) by us already; this covers a request emitted by an
    # earlier instance whose state was lost.
    await _decided(ctx, [e])
    return []


async def on_job_started(ctx: Ctx, e: jb.JobStarted) -> list[Event]:
    await StateStore.update_job(ctx.conn, e.job_id, phase="running", attempts=e.attempt)
    return []


async def on_job_compiled(ctx: Ctx, e: jb.JobCompiled) -> list[Event]:
    if e.publish:
        await StateStore.update_job(ctx.conn, e.job_id, phase="compiled")
    return []


async def on_job_ended(
    ctx: Ctx, e: jb.JobSucceeded | jb.JobFailed | prs.PrCreated | prs.PrFailed
) -> list[Event]:
    await StateStore.update_job(ctx.conn, e.job_id, phase="ended")
    # Feedback that arrived during the job may already fill the next threshold.
    return await _decided(ctx, domain.decide_on_feedback(ctx.state, ctx.offset))


async def on_cancel_requested(ctx: Ctx, e: jb.JobCancelRequested) -> list[Event]:
    await StateStore.update_job(ctx.conn, e.job_id, cancel_requested=True)
    ctx.cancelled.add(e.job_id)
    return []


# The baseline of a job is the task's active prompt: every version's text is kept, so an
# activation of any of them, however old, names its text.


async def on_version_created(ctx: Ctx, e: prompts.PromptVersionCreated) -> list[Event]:
    if _accepted(ctx):  # a copy of a version is not: the first text stays
        await StateStore.add_prompt_text(ctx.conn, e.prompt_version_id, e.task_id, e.prompt_text)
    return []


async def on_activated(ctx: Ctx, e: prompts.PromptActivated) -> list[Event]:
    if not _accepted(ctx):
        return []
    text = await StateStore.prompt_text(ctx.conn, e.prompt_version_id)
    if text is not None:
        ctx.settings = {**ctx.settings, "_active_prompt": text}
    return []


Handler = Callable[[Ctx, Any], Awaitable[list[Event]]]

HANDLERS: dict[type[Event], Handler] = {
    tk.TaskCreated: on_task_created,
    tk.TaskUpdated: on_task_updated,
    fb.FeedbackRecorded: on_feedback,
    fb.SeedsUploaded: on_seeds,
    jb.OptimizationRequested: on_optimization_requested,
    jb.JobRequested: on_job_requested,
    jb.JobStarted: on_job_started,
    jb.JobCompiled: on_job_compiled,
    jb.JobSucceeded: on_job_ended,
    jb.JobFailed: on_job_ended,
    prs.PrCreated: on_job_ended,
    prs.PrFailed: on_job_ended,
    jb.JobCancelRequested: on_cancel_requested,
    prompts.PromptVersionCreated: on_version_created,
    prompts.PromptActivated: on_activated,
}
