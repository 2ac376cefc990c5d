"""The publisher's fold: one function per event type, listed in ``HANDLERS``.

Whether a task or prompt-version request takes effect is judged by :mod:`shared.decisions`,
the functions the projector and the optimizer use too (docs/adr/0006-decide-once.md): a
rejected one changes nothing here, and in particular imports nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.pr_publisher import domain
from services.pr_publisher.state import PublisherState as S
from shared import decisions
from shared.events import jobs as jb
from shared.events import prompts, prs
from shared.events import tasks as tk
from shared.events.base import Event
from shared.events.envelope import Envelope


@dataclass(frozen=True)
class Ctx:
    conn: AsyncConnection
    envelope: Envelope
    partition: int


async def on_task_created(ctx: Ctx, e: tk.TaskCreated) -> None:
    task_id = str(e.task_id)
    if decisions.decide_task_created(await S.task_life(ctx.conn, task_id), e.name).rejected:
        return
    settings = e.model_dump(mode="json", exclude={"task_id", "request_id"})
    await S.save_task(ctx.conn, task_id, settings)
    if domain.wants_import(settings):
        await _import(ctx, e.task_id)


async def on_task_updated(ctx: Ctx, e: tk.TaskUpdated) -> None:
    task_id = str(e.task_id)
    if decisions.decide_task_updated(await S.task_life(ctx.conn, task_id)).rejected:
        return
    settings = {**await S.task_settings(ctx.conn, task_id), **e.changes}
    await S.save_task(ctx.conn, task_id, settings)
    if domain.wants_import(settings, e.changes):
        await _import(ctx, e.task_id)


async def on_task_deleted(ctx: Ctx, e: tk.TaskDeleted) -> None:
    task_id = str(e.task_id)
    if decisions.decide_task_deleted(await S.task_life(ctx.conn, task_id)).accepted:
        await S.delete_task(ctx.conn, task_id)


async def _import(ctx: Ctx, task_id: object) -> None:
    await S.add_import(
        ctx.conn,
        request_id=str(ctx.envelope.id),
        task_id=str(task_id),
        partition=ctx.partition,
        correlation_id=ctx.envelope.correlation_id,
    )


async def on_version_created(ctx: Ctx, e: prompts.PromptVersionCreated) -> None:
    if decisions.decide_version_created(await S.version_known(ctx.conn, str(e.prompt_version_id))).rejected:
        return
    await S.save_version(
        ctx.conn, id=str(e.prompt_version_id), task_id=str(e.task_id), prompt_text=e.prompt_text
    )


async def on_activated(ctx: Ctx, e: prompts.PromptActivated) -> None:
    task_id, version_id = str(e.task_id), str(e.prompt_version_id)
    status = await S.version_status(ctx.conn, task_id, version_id)
    if decisions.decide_prompt_activated(status).accepted:
        await S.activate(ctx.conn, task_id, version_id)


async def on_import_attempted(ctx: Ctx, e: prompts.PromptImportAttempted) -> None:
    if ctx.envelope.causation_id is not None:
        await S.finish_import(ctx.conn, ctx.envelope.causation_id)


async def _request(ctx: Ctx, job_id: object, task_id: object) -> None:
    await S.add_request(
        ctx.conn,
        request_id=str(ctx.envelope.id),
        job_id=str(job_id),
        task_id=str(task_id),
        partition=ctx.partition,
        correlation_id=ctx.envelope.correlation_id,
    )


async def on_job_compiled(ctx: Ctx, e: jb.JobCompiled) -> None:
    await S.save_job(
        ctx.conn,
        job_id=str(e.job_id),
        task_id=str(e.task_id),
        version_id=str(e.prompt_version_id),
        job_metadata=e.job_metadata,
        examples=e.examples,
    )
    if e.publish:
        await _request(ctx, e.job_id, e.task_id)


async def on_retry_requested(ctx: Ctx, e: prs.PrRetryRequested) -> None:
    await _request(ctx, e.job_id, e.task_id)


async def on_outcome(ctx: Ctx, e: prs.PrCreated | prs.PrFailed) -> None:
    if ctx.envelope.causation_id is not None:
        await S.finish_request(ctx.conn, ctx.envelope.causation_id)


Handler = Callable[[Ctx, Any], Awaitable[None]]

HANDLERS: dict[type[Event], Handler] = {
    tk.TaskCreated: on_task_created,
    tk.TaskUpdated: on_task_updated,
    tk.TaskDeleted: on_task_deleted,
    prompts.PromptVersionCreated: on_version_created,
    prompts.PromptActivated: on_activated,
    prompts.PromptImportAttempted: on_import_attempted,
    jb.JobCompiled: on_job_compiled,
    prs.PrRetryRequested: on_retry_requested,
    prs.PrCreated: on_outcome,
    prs.PrFailed: on_outcome,
}
