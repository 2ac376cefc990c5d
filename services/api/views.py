"""Read-model rows composed into the answers routes return (reads only, no waiting)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from services.api import domain
from services.api.pagination import encode_cursor
from services.api.problems import not_found
from services.api.queries import jobs, tasks
from services.api.queries.tasks import TaskStats
from services.api.reads import Reads
from services.api.schemas.jobs import JobResponse
from services.api.schemas.tasks import SHOWN_SETTINGS, JobSummary, TaskPage, TaskResponse, ThresholdProgress


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


def task_views_in(conn: Connection, rows: Sequence[Any]) -> list[TaskResponse]:
    """A page of tasks as the API shows them: their figures in two queries, whatever the page size."""
    figures = tasks.stats(conn, rows)
    return [task_response(row, figures[row.id]) for row in rows]


def task_page_in(limit: int, after: tuple[datetime, str] | None, conn: Connection) -> TaskPage:
    """Live tasks newest first, strictly after the cursor ``after``, and the next page's cursor.

    ``GET /api/v1/tasks`` answers it; the dashboard's Tasks page shows it.
    """
    rows = conn.execute(tasks.page_query(limit + 1, after)).all()
    items = task_views_in(conn, rows[:limit])
    last = rows[limit - 1] if len(rows) > limit else None
    return TaskPage(items=items, next_cursor=encode_cursor(last.created_at, last.id) if last else None)


async def shared_task_view(reads: Reads, task_id: uuid.UUID) -> TaskResponse:
    """The task as the API shows it (a 404 problem when it does not exist or was deleted).

    Its four queries are one ``Reads.run`` work; concurrent reads of one task share them.
    """
    view = await reads.run(functools.partial(_task_view_or_none, task_id), share=("task-view", task_id))
    if view is None:
        raise not_found(f"task {task_id} not found")
    return view


def _task_view_or_none(task_id: uuid.UUID, conn: Connection) -> TaskResponse | None:
    row = conn.execute(tasks.live(task_id)).first()
    return None if row is None else task_response(row, tasks.stats(conn, [row])[row.id])


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
    """The job's answer through ``reads``: concurrent reads of one job share its query.

    A 404 problem when there is no such job. Begun after the call, so after a write the
    answer shows it (the shared row is never changed; each caller gets its own answer).
    """
    row = await reads.run(functools.partial(_job_row, job_id), share=("job", job_id))
    if row is None:
        raise not_found(f"job {job_id} not found")
    return JobResponse.from_row(row)


def _job_row(job_id: uuid.UUID, conn: Connection) -> Any:
    return conn.execute(jobs.get_query(job_id)).first()


def job_in(conn: Connection, job_id: uuid.UUID) -> JobResponse:
    """The job's answer inside a larger ``Reads.run`` work; a 404 problem when there is no such job."""
    row = _job_row(job_id, conn)
    if row is None:
        raise not_found(f"job {job_id} not found")
    return JobResponse.from_row(row)
