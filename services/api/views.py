"""Read-model rows composed into the answers routes return (reads only, no waiting)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api import domain
from services.api.problems import not_found
from services.api.queries import jobs, tasks
from services.api.queries.tasks import TaskStats
from services.api.reads import Reads
from services.api.schemas.jobs import JobResponse
from services.api.schemas.tasks import SHOWN_SETTINGS, JobSummary, TaskResponse, ThresholdProgress


def task_response(row: Any, stats: TaskStats) -> TaskResponse:
    settings = dict(row.settings)
    values: dict[str, Any] = {name: settings.get(name) for name in SHOWN_SETTINGS}
    threshold = int(settings.get("feedback_threshold") or 1)
    last = stats.last_job
    values.update(
        id=row.id,
        name=row.name,
        evaluator_config=settings.get("evaluator_config") or {},
        git_token_set=row.git_token_encrypted is not None,
        feedback_count=stats.feedback_count,
        threshold_progress=ThresholdProgress(**domain.threshold_progress(stats.since_cutoff, threshold)),
        last_optimization=JobSummary.model_validate(last, from_attributes=True) if last is not None else None,
        active_prompt_score=stats.active_score,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
    return TaskResponse.model_validate(values)


async def task_views(conn: AsyncConnection, rows: Sequence[Any]) -> list[TaskResponse]:
    figures = await conn.run_sync(tasks.stats, rows)
    return [task_response(row, figures[row.id]) for row in rows]


async def task_view(conn: AsyncConnection, task_id: uuid.UUID) -> TaskResponse:
    """The task as the API shows it; a 404 problem when it does not exist (or was deleted)."""
    return await conn.run_sync(task_view_in, task_id)


def task_view_in(conn: Connection, task_id: uuid.UUID) -> TaskResponse:
    """:func:`task_view` on a synchronous connection: its four queries in one ``Reads.run`` trip."""
    row = live_task_in(conn, task_id)
    return task_response(row, tasks.stats(conn, [row])[row.id])


async def shared_task_view(reads: Reads, task_id: uuid.UUID) -> TaskResponse:
    """:func:`task_view_in` through ``reads``: concurrent reads of one task share its four queries."""
    view = await reads.run(functools.partial(_task_view_or_none, task_id), share=("task-view", task_id))
    if view is None:
        raise not_found(f"task {task_id} not found")
    return view


def _task_view_or_none(task_id: uuid.UUID, conn: Connection) -> TaskResponse | None:
    row = conn.execute(tasks.live(task_id)).first()
    return None if row is None else task_response(row, tasks.stats(conn, [row])[row.id])


async def existing_task(conn: AsyncConnection, task_id: uuid.UUID) -> Any:
    return await conn.run_sync(live_task_in, task_id)


async def live_task(reads: Reads, task_id: uuid.UUID) -> Any:
    """:func:`live_task_in` through ``reads``, sharing one query with the concurrent checks of the task.

    The check every feedback write makes before it appends: under load many requests
    check the same task at once, and each is answered from a read begun after it asked.
    """
    row = await reads.run(functools.partial(_live_task_row, task_id), share=("live-task", task_id))
    if row is None:
        raise not_found(f"task {task_id} not found")
    return row


def _live_task_row(task_id: uuid.UUID, conn: Connection) -> Any:
    return conn.execute(tasks.live(task_id)).first()


def live_task_in(conn: Connection, task_id: uuid.UUID) -> Any:
    """The task's row; a 404 problem when it does not exist (or was deleted)."""
    row = conn.execute(tasks.live(task_id)).first()
    if row is None:
        raise not_found(f"task {task_id} not found")
    return row


async def shared_job_view(reads: Reads, job_id: uuid.UUID) -> JobResponse:
    """The job's answer through ``reads``: concurrent reads of one job share its query."""
    row = await reads.run(functools.partial(_job_row, job_id), share=("job", job_id))
    if row is None:
        raise not_found(f"job {job_id} not found")
    return JobResponse.from_row(row)


def _job_row(job_id: uuid.UUID, conn: Connection) -> Any:
    return conn.execute(jobs.get_query(job_id)).first()


async def job_view(conn: AsyncConnection, job_id: uuid.UUID) -> JobResponse:
    row = await jobs.get(conn, job_id)
    if row is None:
        raise not_found(f"job {job_id} not found")
    return JobResponse.from_row(row)
