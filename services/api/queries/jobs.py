"""Jobs and their event histories."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Select, select

from services.api.domain import ACTIVE_STATUSES
from shared.readmodel.tables import job_events, jobs


def get_query(job_id: uuid.UUID) -> Select[Any]:
    return select(jobs).where(jobs.c.id == str(job_id))


def page_query(task_id: uuid.UUID | None, limit: int, offset: int, status: str | None = None) -> Select[Any]:
    """Newest first; the id orders jobs created in the same instant, so pages are stable.

    ``status`` narrows the list (the dashboard's filter; the API lists every status).
    """
    query = select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset)
    if task_id is not None:
        query = query.where(jobs.c.task_id == str(task_id))
    if status is not None:
        query = query.where(jobs.c.status == status)
    return query


def active_for_task(conn: Connection, task_id: uuid.UUID) -> Any | None:
    query = select(jobs).where(jobs.c.task_id == str(task_id), jobs.c.status.in_(ACTIVE_STATUSES)).limit(1)
    return conn.execute(query).first()


def events(conn: Connection, job_id: uuid.UUID, after_offset: int = -1) -> list[Any]:
    """The job's events in log order (all of a job's events share its task's partition)."""
    query = (
        select(job_events)
        .where(job_events.c.job_id == str(job_id), job_events.c.log_offset > after_offset)
        .order_by(job_events.c.log_offset, job_events.c.event_id)
    )
    return list(conn.execute(query).all())


def status(conn: Connection, job_id: uuid.UUID) -> str | None:
    value = conn.scalar(select(jobs.c.status).where(jobs.c.id == str(job_id)))
    return str(value) if value is not None else None
