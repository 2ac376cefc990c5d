"""The optimizer's local state store: task state, feedback and jobs per owned partition.

A fold of the task topic, written with its offsets in one transaction (SQLite by
default, one file per instance). A partition this instance has never owned is rebuilt
from the start of the log when it is assigned, and so is every partition when the store
was written by another :data:`FOLD_VERSION` (``shared/fold_stamp.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Float, Integer, MetaData, String, Table, Text, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.optimizer.domain import TaskState
from shared.fold_stamp import create_or_refold, stamp_table
from shared.kafka.offsets import TableOffsets, offsets_table

#: Raise when the fold keeps something it did not keep before: older stores are refolded.
#: 2: a task's state keeps its deletion, its versions' statuses and ``accepted_at`` (ADR 0006).
#: 3: every version's text, in ``prompt_texts`` (before: the 20 newest, in the task's settings).
FOLD_VERSION = 3

metadata = MetaData()

offsets = offsets_table(metadata)
stamp_table(metadata)
task_states = Table(
    "task_states",
    metadata,
    Column("task_id", String(36), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("state", JSON, nullable=False),
    Column("settings", JSON, nullable=False),
)
examples = Table(
    "examples",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("task_id", String(36), nullable=False, index=True),
    Column("inputs", JSON, nullable=False),
    Column("output", Text, nullable=False),
    Column("score", Float, nullable=False),
    Column("source", String(16), nullable=False),
    Column("log_offset", Integer, nullable=False),
)
jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("task_id", String(36), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("log_offset", Integer, nullable=False),
    Column("triggered_by", String(32), nullable=False),
    Column("correlation_id", String(64)),
    # pending → running → compiled (waiting for its PR) → ended
    Column("phase", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
)
#: Every accepted version's text: an activation, of however old a draft, names its baseline.
prompt_texts = Table(
    "prompt_texts",
    metadata,
    Column("version_id", String(36), primary_key=True),
    Column("task_id", String(36), nullable=False),
    Column("text", Text, nullable=False),
)


class StateStore(TableOffsets):
    """Reads and writes the fold; every write happens in the caller's transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, offsets)

    async def create(self) -> None:
        """Create the tables; a store of another fold version is emptied to be folded again."""
        async with self.engine.begin() as conn:
            await conn.run_sync(create_or_refold, metadata, FOLD_VERSION)

    @staticmethod
    async def task(conn: AsyncConnection, task_id: uuid.UUID) -> tuple[TaskState, dict[str, Any]]:
        row = (await conn.execute(select(task_states).where(task_states.c.task_id == str(task_id)))).first()
        if row is None:
            return TaskState(task_id=task_id), {}
        state = dict(row.state)
        active = state.pop("active_job")
        return TaskState(
            task_id=task_id, active_job=uuid.UUID(active) if active else None, **state
        ), row.settings

    @staticmethod
    async def save_task(
        conn: AsyncConnection, state: TaskState, settings: dict[str, Any], partition: int
    ) -> None:
        raw = asdict(state)
        raw.pop("task_id")
        raw["active_job"] = str(state.active_job) if state.active_job else None
        values = {"task_id": str(state.task_id), "partition": partition, "state": raw, "settings": settings}
        stmt = sqlite.insert(task_states).values(**values)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["task_id"], set_=values))

    @staticmethod
    async def add_example(conn: AsyncConnection, **values: Any) -> None:
        await conn.execute(sqlite.insert(examples).values(**values).on_conflict_do_nothing())

    @staticmethod
    async def add_prompt_text(
        conn: AsyncConnection, version_id: uuid.UUID, task_id: uuid.UUID, text: str
    ) -> None:
        """The first text stored for a version id stays (a copy of the event changes nothing)."""
        values = {"version_id": str(version_id), "task_id": str(task_id), "text": text}
        await conn.execute(sqlite.insert(prompt_texts).values(**values).on_conflict_do_nothing())

    @staticmethod
    async def prompt_text(conn: AsyncConnection, version_id: uuid.UUID) -> str | None:
        query = select(prompt_texts.c.text).where(prompt_texts.c.version_id == str(version_id))
        value = await conn.scalar(query)
        return str(value) if value is not None else None

    @staticmethod
    async def add_job(conn: AsyncConnection, **values: Any) -> None:
        row = {"phase": "pending", "attempts": 0, "cancel_requested": False, **values}
        await conn.execute(sqlite.insert(jobs).values(**row).on_conflict_do_nothing())

    @staticmethod
    async def update_job(conn: AsyncConnection, job_id: uuid.UUID, **values: Any) -> None:
        await conn.execute(update(jobs).where(jobs.c.job_id == str(job_id)).values(**values))

    @staticmethod
    async def job(conn: AsyncConnection, job_id: uuid.UUID) -> Any:
        return (await conn.execute(select(jobs).where(jobs.c.job_id == str(job_id)))).first()

    async def unfinished_jobs(self, partitions: set[int]) -> list[Any]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(jobs).where(jobs.c.phase.in_(("pending", "running"))))).all()
        return [r for r in rows if r.partition in partitions]

    async def job_inputs(self, job_id: uuid.UUID) -> tuple[Any, dict[str, Any], list[Any]]:
        """The job row, its task's settings, and the examples up to the job's cut-off."""
        async with self.engine.connect() as conn:
            job = await self.job(conn, job_id)
            _state, settings = await self.task(conn, uuid.UUID(job.task_id))
            rows = (
                await conn.execute(
                    select(examples)
                    .where(examples.c.task_id == job.task_id, examples.c.log_offset <= job.log_offset)
                    .order_by(examples.c.log_offset, examples.c.id)
                )
            ).all()
        return job, settings, list(rows)
