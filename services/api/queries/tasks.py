"""Tasks and the live figures shown with them, loaded for a whole page at once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_, select

from shared.readmodel.tables import jobs, prompt_versions, tasks


@dataclass(frozen=True)
class TaskStats:
    """Live feedback, feedback since the last job's cut-off, the last job, the active prompt's score."""

    feedback_count: int = 0
    since_cutoff: int = 0
    last_job: Any | None = None
    active_score: float | None = None


def live(task_id: uuid.UUID) -> Select[Any]:
    """The task, unless it does not exist or was deleted (deleted tasks are gone for the API)."""
    return select(tasks).where(tasks.c.id == str(task_id), tasks.c.deleted.is_(False))


def page_query(limit: int, after: tuple[datetime, str] | None) -> Select[Any]:
    """Newest first, strictly after the cursor's ``(created_at, id)``."""
    query = select(tasks).where(tasks.c.deleted.is_(False))
    if after is not None:
        created, last_id = after
        query = query.where(
            or_(tasks.c.created_at < created, and_(tasks.c.created_at == created, tasks.c.id < last_id))
        )
    return query.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit)


def live_name_exists(conn: Connection, key: str) -> bool:
    query = select(tasks.c.id).where(tasks.c.name_key == key, tasks.c.deleted.is_(False)).limit(1)
    return conn.scalar(query) is not None


def deleted_count(conn: Connection, key: str) -> int:
    """The name's generation: how many tasks of this name were deleted."""
    query = select(func.count()).select_from(tasks).where(tasks.c.name_key == key, tasks.c.deleted.is_(True))
    return int(conn.scalar(query) or 0)


def stats(conn: Connection, rows: Sequence[Any]) -> dict[str, TaskStats]:
    """The live figures of ``rows`` (whole ``tasks`` rows), in two queries whatever the page size.

    The feedback counts are the rows' own counters, which the projector keeps with the
    feedback (``tasks.live_feedback``): counting the feedback here cost more with every row.
    Synchronous, so a route runs them with the task's own read in one trip
    (``services/api/reads.py``).
    """
    ids = [row.id for row in rows]
    if not ids:
        return {}
    last = _last_jobs(conn, ids)
    scores = _active_scores(conn, ids)
    return {
        row.id: TaskStats(row.live_feedback, row.live_since_cutoff, last.get(row.id), scores.get(row.id))
        for row in rows
    }


def _last_jobs(conn: Connection, ids: list[str]) -> dict[str, Any]:
    order = (jobs.c.created_at.desc(), jobs.c.id.desc())
    rank = func.row_number().over(partition_by=jobs.c.task_id, order_by=order).label("rank")
    ranked = select(jobs, rank).where(jobs.c.task_id.in_(ids)).subquery()
    rows = conn.execute(select(ranked).where(ranked.c.rank == 1)).all()
    return {row.task_id: row for row in rows}


def _active_scores(conn: Connection, ids: list[str]) -> dict[str, float | None]:
    query = select(prompt_versions.c.task_id, prompt_versions.c.eval_score).where(
        prompt_versions.c.task_id.in_(ids), prompt_versions.c.status == "active"
    )
    return {task_id: score for task_id, score in conn.execute(query).all()}
