"""The one read the dashboard needs that the API has no query for: jobs filtered by status."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.queries import jobs as api_jobs
from shared.readmodel.tables import jobs


async def jobs_page(
    conn: AsyncConnection, task_id: uuid.UUID | None, status: str | None, limit: int
) -> list[Any]:
    """Newest first, as ``GET /api/v1/jobs`` lists them; ``status`` narrows the list."""
    if status is None:
        return await api_jobs.page(conn, task_id, limit, 0)
    query = (
        select(jobs)
        .where(jobs.c.status == status)
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .limit(limit)
    )
    if task_id is not None:
        query = query.where(jobs.c.task_id == str(task_id))
    return list((await conn.execute(query)).all())
