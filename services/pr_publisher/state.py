"""The PR publisher's local state: what it needs to open a PR, folded from the log.

Tasks' Git settings (token as ciphertext) and whether they were deleted, prompt versions
and their status (draft, active, archived), compiled jobs, the publication requests (a
``JobCompiled`` to publish, or a ``PrRetryRequested``) and the import requests (a task
created or its Git settings changed) that have no outcome in the log yet. Stored with the
offsets in one transaction.

The state is a fold, so a change of what it holds is made by folding again: a database
stamped with an older :data:`FOLD_VERSION` (or none: written before the stamp existed) is
emptied at start, offsets included, and the consumer folds the log from its beginning, as a
new instance would. Requests and imports whose outcome is in the log end as done again, so
nothing is published or imported twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Column, Integer, MetaData, String, Table, Text, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.decisions import TaskLife, VersionStatus
from shared.fold_stamp import create_or_refold, stamp_table
from shared.kafka.offsets import TableOffsets, offsets_table

#: Raise when the fold keeps something it did not keep before: older databases are refolded.
#: 2: tasks remember their deletion, versions their status (ADR 0006).
FOLD_VERSION = 2
#: Tables of older fold versions that this one no longer has.
_RETIRED_TABLES = ("active_versions",)

metadata = MetaData()

offsets = offsets_table(metadata)
tasks = Table(
    "tasks",
    metadata,
    Column("task_id", String(36), primary_key=True),
    Column("settings", JSON, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
)
versions = Table(
    "versions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("task_id", String(36), nullable=False),
    Column("prompt_text", Text, nullable=False),
    Column("status", String(16), nullable=False, default="draft"),  # draft | active | archived
)
jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(36), primary_key=True),
    Column("task_id", String(36), nullable=False),
    Column("version_id", String(36), nullable=False),
    Column("job_metadata", JSON, nullable=False),
    Column("examples", JSON, nullable=False),
)
stamp_table(metadata)
imports = Table(
    "imports",
    metadata,
    Column("request_id", String(36), primary_key=True),  # the TaskCreated/TaskUpdated event's id
    Column("task_id", String(36), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("correlation_id", String(64)),
    Column("status", String(16), nullable=False),  # pending | done | superseded
)
requests = Table(
    "requests",
    metadata,
    Column("request_id", String(36), primary_key=True),  # the requesting event's id
    Column("job_id", String(36), nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("correlation_id", String(64)),
    Column("status", String(16), nullable=False),  # pending | done
)


def _upsert(table: Table, values: dict[str, Any], keys: list[str]) -> Any:
    return sqlite.insert(table).values(**values).on_conflict_do_update(index_elements=keys, set_=values)


class PublisherState(TableOffsets):
    """Reads and writes the publisher's fold, in the caller's transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine, offsets)

    async def create(self) -> None:
        """Create the tables; a database of an older fold version is emptied to be folded again."""
        async with self.engine.begin() as conn:
            await conn.run_sync(create_or_refold, metadata, FOLD_VERSION, retired=_RETIRED_TABLES)

    @staticmethod
    async def task_life(conn: AsyncConnection, task_id: str) -> TaskLife:
        deleted = (await conn.execute(select(tasks.c.deleted).where(tasks.c.task_id == task_id))).scalar()
        if deleted is None:
            return TaskLife.ABSENT
        return TaskLife.DELETED if deleted else TaskLife.LIVE

    @staticmethod
    async def task_settings(conn: AsyncConnection, task_id: str) -> dict[str, Any]:
        row = (await conn.execute(select(tasks.c.settings).where(tasks.c.task_id == task_id))).first()
        return dict(row.settings) if row else {}

    @staticmethod
    async def save_task(conn: AsyncConnection, task_id: str, settings: dict[str, Any]) -> None:
        await conn.execute(_upsert(tasks, {"task_id": task_id, "settings": settings}, ["task_id"]))

    @staticmethod
    async def delete_task(conn: AsyncConnection, task_id: str) -> None:
        """The task is deleted: its import requests not yet read are superseded (nobody will use them)."""
        await conn.execute(update(tasks).where(tasks.c.task_id == task_id).values(deleted=True))
        await conn.execute(
            update(imports)
            .where(imports.c.task_id == task_id, imports.c.status == "pending")
            .values(status="superseded")
        )

    @staticmethod
    async def version_known(conn: AsyncConnection, version_id: str) -> bool:
        return await conn.scalar(select(versions.c.id).where(versions.c.id == version_id)) is not None

    @staticmethod
    async def version_status(conn: AsyncConnection, task_id: str, version_id: str) -> VersionStatus | None:
        """The status of ``version_id`` as a version of ``task_id``; None if the task has no such version."""
        status = await conn.scalar(
            select(versions.c.status).where(versions.c.id == version_id, versions.c.task_id == task_id)
        )
        return _STATUSES.get(status) if status is not None else None

    @staticmethod
    async def save_version(conn: AsyncConnection, **values: Any) -> None:
        await conn.execute(sqlite.insert(versions).values(status="draft", **values).on_conflict_do_nothing())

    @staticmethod
    async def save_job(conn: AsyncConnection, **values: Any) -> None:
        await conn.execute(_upsert(jobs, values, ["job_id"]))

    @staticmethod
    async def add_request(conn: AsyncConnection, **values: Any) -> None:
        await conn.execute(
            sqlite.insert(requests).values(status="pending", **values).on_conflict_do_nothing()
        )

    @staticmethod
    async def finish_request(conn: AsyncConnection, request_id: str) -> None:
        await conn.execute(update(requests).where(requests.c.request_id == request_id).values(status="done"))

    async def pending(self, partitions: set[int]) -> list[Any]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(requests).where(requests.c.status == "pending"))).all()
        return [r for r in rows if r.partition in partitions]

    async def publication(self, job_id: str) -> tuple[Any, Any, dict[str, Any]] | None:
        """The compiled job, its prompt version and its task's settings; None if unknown."""
        async with self.engine.connect() as conn:
            job = (await conn.execute(select(jobs).where(jobs.c.job_id == job_id))).first()
            if job is None:
                return None
            version = (await conn.execute(select(versions).where(versions.c.id == job.version_id))).first()
            settings = await self.task_settings(conn, job.task_id)
        return job, version, settings

    @staticmethod
    async def activate(conn: AsyncConnection, task_id: str, version_id: str) -> None:
        """Make ``version_id`` the task's active version and archive the one active before."""
        await conn.execute(
            update(versions)
            .where(versions.c.task_id == task_id, versions.c.status == "active")
            .values(status="archived")
        )
        await conn.execute(
            update(versions)
            .where(versions.c.id == version_id, versions.c.task_id == task_id)
            .values(status="active")
        )

    @staticmethod
    async def add_import(conn: AsyncConnection, **values: Any) -> None:
        """A new import request; the task's older pending ones are superseded (the file is read once)."""
        await conn.execute(
            update(imports)
            .where(imports.c.task_id == values["task_id"], imports.c.status == "pending")
            .values(status="superseded")
        )
        await conn.execute(sqlite.insert(imports).values(status="pending", **values).on_conflict_do_nothing())

    @staticmethod
    async def finish_import(conn: AsyncConnection, request_id: str) -> None:
        await conn.execute(update(imports).where(imports.c.request_id == request_id).values(status="done"))

    async def pending_imports(self, partitions: set[int]) -> list[Any]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(imports).where(imports.c.status == "pending"))).all()
        return [r for r in rows if r.partition in partitions]

    async def import_target(self, task_id: str) -> tuple[dict[str, Any], str | None]:
        """The task's settings and the text of its active prompt version (None when none is known)."""
        async with self.engine.connect() as conn:
            settings = await self.task_settings(conn, task_id)
            active = await conn.scalar(
                select(versions.c.prompt_text).where(
                    versions.c.task_id == task_id, versions.c.status == "active"
                )
            )
        return settings, active


_STATUSES: dict[str, VersionStatus] = {"draft": "draft", "active": "active", "archived": "archived"}
