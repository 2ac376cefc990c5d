"""Feedback and seeds."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, case, func, select

from shared.readmodel.tables import feedback


def get(conn: Connection, feedback_id: uuid.UUID) -> Any | None:
    return conn.execute(select(feedback).where(feedback.c.id == str(feedback_id))).first()


def page(conn: Connection, task_id: uuid.UUID | None, limit: int, offset: int) -> list[Any]:
    """Newest first; the id orders feedback recorded in the same instant, so pages are stable."""
    query = (
        select(feedback)
        .order_by(feedback.c.created_at.desc(), feedback.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if task_id is not None:
        query = query.where(feedback.c.task_id == str(task_id))
    return list(conn.execute(query).all())


def seed_count(conn: Connection, task_id: uuid.UUID) -> int:
    query = (
        select(func.count())
        .select_from(feedback)
        .where(feedback.c.task_id == str(task_id), feedback.c.source == "seed")
    )
    return int(conn.scalar(query) or 0)


def example_counts(conn: Connection, task_id: uuid.UUID, min_gold_score: float) -> tuple[int, int]:
    """All examples of the task (live and seeds), and those scored high enough to teach."""
    gold = func.sum(case((feedback.c.score >= min_gold_score, 1), else_=0))
    query = select(func.count(), gold).where(feedback.c.task_id == str(task_id))
    total, good = conn.execute(query).one()
    return int(total or 0), int(good or 0)
