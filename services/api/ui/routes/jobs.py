"""``/ui/jobs``: the jobs list, filtered by task and status, kept current over SSE."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Connection
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.api import domain
from services.api.deps import ApiContext, ContextDep, still_active
from services.api.keyring import KeyRecord
from services.api.pagination import as_utc
from services.api.queries import jobs, tasks
from services.api.routes import jobs as api_jobs
from services.api.schemas.jobs import JobResponse
from services.api.ui import render
from services.api.ui.session import Session

router = APIRouter(prefix="/jobs")
LIMIT = 50
POLL_SECONDS = 0.5
KEY_CHECK_SECONDS = api_jobs.KEY_CHECK_SECONDS
STATUSES = (*domain.ACTIVE_STATUSES, *domain.TERMINAL_STATUSES)


def filters(task_id: str | None, status: str | None) -> tuple[uuid.UUID | None, str | None]:
    """A filter form's values; "" (any) and anything unknown mean no filter."""
    try:
        task = uuid.UUID(task_id) if task_id else None
    except ValueError:
        task = None
    return task, status if status in STATUSES else None


def task_names(conn: Connection) -> dict[str, str]:
    """The names of the newest live tasks, by id (a ``Reads.run`` work of its own or a part of one)."""
    return {row.id: row.name for row in conn.execute(tasks.page_query(500, None)).all()}


def _jobs(task_id: uuid.UUID | None, status: str | None, conn: Connection) -> list[JobResponse]:
    """The list's jobs, newest first, as ``GET /api/v1/jobs`` lists them; ``status`` narrows it."""
    query = jobs.page_query(task_id, LIMIT, 0, status)
    return JobResponse.from_rows(conn.execute(query))


def _page(
    task_id: uuid.UUID | None, status: str | None, conn: Connection
) -> tuple[list[JobResponse], dict[str, str]]:
    """The list's jobs and the tasks' names: the page's one ``Reads.run`` work."""
    return _jobs(task_id, status, conn), task_names(conn)


def _changes(
    task_id: uuid.UUID | None, status: str | None, known: dict[str, str], conn: Connection
) -> tuple[list[JobResponse], dict[str, str]]:
    """A tick's jobs, and the tasks' names: ``known`` (read again only when a job's task is not in it)."""
    shown = _jobs(task_id, status, conn)
    stale = any(str(job.task_id) not in known for job in shown)
    return shown, task_names(conn) if stale else known


@router.get("", response_class=HTMLResponse)
async def jobs_list(
    request: Request,
    ui: Session,
    context: ContextDep,
    task_id: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query()] = None,
) -> Response:
    task, state = filters(task_id, status)
    shown, names = await context.reads.run(functools.partial(_page, task, state))
    since = max((j.created_at for j in shown), default=None)
    return render.page(
        request,
        "jobs.html",
        ui=ui,
        jobs=shown,
        names=names,
        statuses=STATUSES,
        task_id=str(task) if task else "",
        status=state or "",
        since=since.isoformat() if since else "",
    )


@router.get("/stream")
async def jobs_stream(
    ui: Session,
    context: ContextDep,
    task_id: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query()] = None,
    since: Annotated[str | None, Query(description="The newest job the page showed.")] = None,
) -> EventSourceResponse:
    """Each changed row as ``job-<id>``, each job newer than the page as ``job-new``."""
    task, state = filters(task_id, status)
    try:
        newest = datetime.fromisoformat(since) if since else None
    except ValueError:
        newest = None
    return EventSourceResponse(_list_updates(context, ui.key, task, state, newest))


async def _list_updates(
    context: ApiContext,
    key: KeyRecord,
    task_id: uuid.UUID | None,
    status: str | None,
    since: datetime | None,
) -> AsyncIterator[ServerSentEvent]:
    seen: dict[uuid.UUID, tuple[Any, ...]] = {}
    names: dict[str, str] = {}
    async for _ in ticks(context, key):
        rows, names = await context.reads.run(functools.partial(_changes, task_id, status, names))
        for job in reversed(rows):  # oldest first: each new row lands on top
            state = (job.status, job.progress_step, job.pr_url, job.completed_at)
            if seen.get(job.id) == state:
                continue
            html = render.fragment("_job_row.html", job=job, names=names)
            is_new = job.id not in seen and (since is None or as_utc(job.created_at) > as_utc(since))
            seen[job.id] = state
            yield ServerSentEvent(data=html, event="job-new" if is_new else f"job-{job.id}")
    yield ServerSentEvent(data=render.fragment("_signed_out.html"), event="signed-out")


async def ticks(context: ApiContext, key: KeyRecord) -> AsyncIterator[None]:
    """Every ``POLL_SECONDS`` while the key stays active (checked every few seconds)."""
    loop = asyncio.get_running_loop()
    next_check = loop.time() + KEY_CHECK_SECONDS
    while True:
        if loop.time() >= next_check:
            if not await still_active(context, key):
                return
            next_check = loop.time() + KEY_CHECK_SECONDS
        yield
        await asyncio.sleep(POLL_SECONDS)
