"""The projector's side effects: its database transaction and stored offsets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.readmodel.tables import projector_offsets


async def upsert(conn: AsyncConnection, table: Table, values: Mapping[str, Any], keys: list[str]) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE, on SQLite and PostgreSQL alike."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(table).values(**values)
    updates = {k: v for k, v in values.items() if k not in keys}
    await conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))


async def insert_ignore(conn: AsyncConnection, table: Table, values: Mapping[str, Any]) -> bool:
    """INSERT unless the primary key exists; returns whether a row was inserted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    result = await conn.execute(dialect.insert(table).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)


class SqlOffsetStore:
    """Reads the offsets the projector committed with its rows."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def load_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        wanted = set(partitions)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(projector_offsets))).all()
        stored = {TopicPartition(r.topic, r.partition): r.next_offset for r in rows}
        return {tp: offset for tp, offset in stored.items() if tp in wanted}


async def save_offset(conn: AsyncConnection, topic: str, partition: int, next_offset: int) -> None:
    await upsert(
        conn,
        projector_offsets,
        {"topic": topic, "partition": partition, "next_offset": next_offset},
        ["topic", "partition"],
    )
