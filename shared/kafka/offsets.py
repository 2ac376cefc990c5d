"""Offsets stored beside a consumer's own state, in the same database transaction.

Each stateful consumer (projector, optimizer, PR publisher) keeps a ``(topic,
partition) → next offset`` table in its database and writes it with its effects, so a
redelivered record is never applied twice. ``TableOffsets`` is the ``OffsetStore`` the
consumer loop reads on assignment.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.private_files import ensure_private_file


def offsets_table(metadata: MetaData, name: str = "offsets") -> Table:
    return Table(
        name,
        metadata,
        Column("topic", String(255), primary_key=True),
        Column("partition", Integer, primary_key=True, autoincrement=False),
        Column("next_offset", Integer, nullable=False),
    )


def dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    """An INSERT that supports ON CONFLICT on SQLite and PostgreSQL alike."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


class TableOffsets:
    """Reads and writes a consumer's stored offsets."""

    def __init__(self, engine: AsyncEngine, table: Table) -> None:
        self.engine = engine
        self.table = table

    async def load_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        wanted = set(partitions)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(self.table))).all()
        return {tp: r.next_offset for r in rows if (tp := TopicPartition(r.topic, r.partition)) in wanted}

    async def save(self, conn: AsyncConnection, topic: str, partition: int, next_offset: int) -> None:
        """Record the next offset to read, inside the caller's transaction."""
        await self.save_all(conn, {(topic, partition): next_offset})

    async def save_all(self, conn: AsyncConnection, following: dict[tuple[str, int], int]) -> None:
        """Record the next offset of several partitions with one statement (one round trip)."""
        if not following:
            return
        rows = [{"topic": t, "partition": p, "next_offset": n} for (t, p), n in following.items()]
        stmt = dialect_insert(conn, self.table)
        upsert = stmt.on_conflict_do_update(
            index_elements=["topic", "partition"], set_={"next_offset": stmt.excluded.next_offset}
        )
        await conn.execute(upsert, rows)


def local_state_engine(path: Path) -> AsyncEngine:
    """The SQLite database of a service's local state (one file per instance)."""
    ensure_private_file(path)
    return create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 30})
