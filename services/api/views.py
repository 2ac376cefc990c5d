"""Read-model rows composed into the answers routes return (reads only, no waiting)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.api import domain
from services.api.problems import not_found
from services.api.queries import jobs, tasks
from services.api.queries.tasks import TaskStats
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
    figures = await tasks.stats(conn, rows)
    return [task_response(row, figures[row.id]) for row in rows]


async def task_view(conn: AsyncConnection, task_id: uuid.UUID) -> TaskResponse:
    """The task as the API shows it; a 404 problem when it does not exist (or was deleted)."""
    row = await tasks.get(conn, task_id)
    if row is None:
        raise not_found(f"task {task_id} not found")
    return (await task_views(conn, [row]))[0]


async def existing_task(conn: AsyncConnection, task_id: uuid.UUID) -> Any:
    row = await tasks.get(conn, task_id)
    if row is None:
        raise not_found(f"task {task_id} not found")
    return row


async def job_view(conn: AsyncConnection, job_id: uuid.UUID) -> JobResponse:
    row = await jobs.get(conn, job_id)
    if row is None:
        raise not_found(f"job {job_id} not found")
    return JobResponse.from_row(row)
