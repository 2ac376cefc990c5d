"""``/ui/jobs/{job_id}``: one job (live while it runs), and its retry-pr and cancel buttons.

Retry and cancel run the API's own route functions with the session's key, so the
dashboard decides exactly what the API decides; their problems are shown in plain words.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.api import domain, errors, views
from services.api.deps import ApiContext, ContextDep
from services.api.problems import ProblemError
from services.api.queries import jobs, prompts, tasks
from services.api.routes import jobs as api_jobs
from services.api.schemas.jobs import JobEvent, JobResponse
from services.api.ui import present, render
from services.api.ui.chart import chart
from services.api.ui.problems import attempt
from services.api.ui.routes.jobs import ticks
from services.api.ui.session import AdminAction, Refused, Session, UiSession

router = APIRouter(prefix="/jobs/{job_id}")


@dataclass(frozen=True)
class _Read:
    """What the job page shows, as read in one ``Reads.run`` work."""

    job: JobResponse
    history: list[JobEvent]
    task_name: str
    version: Any | None


def _read(job_id: uuid.UUID, conn: Connection) -> _Read:
    """The job, its history, its task's name and its version, from the API's own views and queries."""
    try:
        job = views.job_in(conn, job_id)
    except ProblemError as exc:
        raise Refused(404, f"There is no job {job_id}.") from exc
    history = [JobEvent.from_row(row) for row in jobs.events(conn, job_id)]
    task = conn.execute(tasks.live(job.task_id)).first()
    version = prompts.get(conn, job.task_id, job.prompt_version_id) if job.prompt_version_id else None
    return _Read(job, history, task.name if task is not None else str(job.task_id), version)


def _shown(read: _Read) -> dict[str, Any]:
    """The page's parts, from what :func:`_read` read."""
    job, history, version = read.job, read.history, read.version
    scores = present.scores(job, history)
    return {
        "job": job,
        "task_name": read.task_name,
        "stages": present.timeline(history),
        "trials": present.trials(history),
        "chart": chart(present.trials(history), scores[0].value),
        "scores": scores,
        "usage": present.usage(job.job_metadata),
        "version": version,
        "active": job.status not in domain.TERMINAL_STATUSES,
    }


async def job_page(
    request: Request,
    ui: UiSession,
    context: ApiContext,
    job_id: uuid.UUID,
    status_code: int = 200,
    **notes: str,
) -> Response:
    shown = _shown(await context.reads.run(functools.partial(_read, job_id)))
    template = "_job.html" if render.is_htmx(request) else "job.html"
    return render.page(request, template, status_code, ui=ui, **shown, **notes)


@router.get("", response_class=HTMLResponse)
async def job_detail(request: Request, ui: Session, context: ContextDep, job_id: uuid.UUID) -> Response:
    return await job_page(request, ui, context, job_id)


@router.get("/stream")
async def job_stream(ui: Session, context: ContextDep, job_id: uuid.UUID) -> EventSourceResponse:
    """The live parts of the job page, re-sent after each new event; ``done`` when the job ends."""
    await context.reads.run(functools.partial(_read, job_id))  # a 404 page, not a broken stream
    return EventSourceResponse(_detail_updates(context, ui, job_id))


async def _detail_updates(
    context: ApiContext, ui: UiSession, job_id: uuid.UUID
) -> AsyncIterator[ServerSentEvent]:
    after = -2
    shown: dict[str, Any] = {}
    async for _ in ticks(context, ui.key):
        status, rows, read = await context.reads.run(functools.partial(_update, job_id, after))
        if read is not None:
            after = rows[-1].log_offset if rows else -1
            shown = _shown(read)
            yield ServerSentEvent(data=render.fragment("_job_live.html", **shown), event="job-live")
        if status is None or status in domain.TERMINAL_STATUSES:
            yield ServerSentEvent(
                data=render.fragment("_job_actions.html", ui=ui, **shown), event="job-actions"
            )
            yield ServerSentEvent(data="", event="done")
            return
    yield ServerSentEvent(data=render.fragment("_signed_out.html"), event="signed-out")


def _update(job_id: uuid.UUID, after: int, conn: Connection) -> tuple[str | None, list[Any], _Read | None]:
    """The job's status and new events; the whole page's read too when there are some (or at first)."""
    status, rows = api_jobs.progress(job_id, after, conn)
    return status, rows, _read(job_id, conn) if rows or after == -2 else None


async def _act(
    request: Request,
    ui: UiSession,
    context: ApiContext,
    job_id: uuid.UUID,
    action: str,
    call: Coroutine[Any, Any, JobResponse],
    success: str,
) -> Response:
    outcome = await attempt(request, action, call)
    if outcome.problem is not None:
        return await job_page(request, ui, context, job_id, outcome.status, problem=outcome.problem)
    return await job_page(request, ui, context, job_id, notice=success)


@router.post("/retry-pr", response_class=HTMLResponse)
async def retry_pr(request: Request, ui: AdminAction, context: ContextDep, job_id: uuid.UUID) -> Response:
    rid = errors.request_id(request)
    call = api_jobs.retry_pr(
        _=ui.key,
        job_id=job_id,
        reads=context.reads,
        writer=context.writer,
        settings=context.settings,
        rid=rid,
    )
    done = "The pull request was opened."
    return await _act(request, ui, context, job_id, "retry the pull request", call, done)


@router.post("/cancel", response_class=HTMLResponse)
async def cancel(request: Request, ui: AdminAction, context: ContextDep, job_id: uuid.UUID) -> Response:
    rid = errors.request_id(request)
    call = api_jobs.cancel_job(_=ui.key, job_id=job_id, reads=context.reads, writer=context.writer, rid=rid)
    done = "Cancellation requested: the job stops at its next safe point and ends FAILED."
    return await _act(request, ui, context, job_id, "cancel the job", call, done)
