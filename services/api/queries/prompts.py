"""Prompt versions."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, Select, select

from shared.readmodel.tables import prompt_versions as versions

# Everything but the DSPy state, which can be large and is not part of any answer.
_SHOWN = [c for c in versions.c if c.name != "dspy_state"]


def active_query(task_id: uuid.UUID) -> Select[Any]:
    """The task's active version: one lookup on the (task_id, status) index."""
    return select(*_SHOWN).where(versions.c.task_id == str(task_id), versions.c.status == "active")


def get(conn: Connection, task_id: uuid.UUID, version_id: uuid.UUID) -> Any | None:
    query = select(*_SHOWN).where(versions.c.id == str(version_id), versions.c.task_id == str(task_id))
    return conn.execute(query).first()


def page(conn: Connection, task_id: uuid.UUID, limit: int, offset: int) -> list[Any]:
    query = (
        select(*_SHOWN)
        .where(versions.c.task_id == str(task_id))
        .order_by(versions.c.version_number.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(conn.execute(query).all())
