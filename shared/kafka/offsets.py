"""Offsets stored beside a consumer's own state, in the same database transaction.

Each stateful consumer (projector, optimizer, PR publisher) keeps a ``(topic,
partition) → next offset`` table in its database and writes it with its effects, so a
redelivered record is never applied twice. ``TableOffsets`` is the ``OffsetStore`` the
consumer loop reads on assignment.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, event, select
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


def dialect_insert(conn: Connection | AsyncConnection | str, table: Table) -> Any:
    """An INSERT that supports ON CONFLICT on SQLite and PostgreSQL (``conn``: or its dialect's name)."""
    dialect = conn if isinstance(conn, str) else conn.dialect.name
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


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
        if following:
            await conn.execute(self._offsets_statement(conn), _rows(following))

    def store(self, conn: Connection, following: dict[tuple[str, int], int]) -> None:
        """``save_all`` on a synchronous connection (a transaction run in one worker thread)."""
        if following:
            conn.execute(self._offsets_statement(conn), _rows(following))

    def _offsets_statement(self, conn: Connection | AsyncConnection) -> Any:
        return _offsets_upsert(conn.dialect.name, self.table)


@functools.cache
def _offsets_upsert(dialect: str, table: Table) -> Any:
    """Built once per table: a consumer stores offsets every batch, and building showed in profiles."""
    stmt = dialect_insert(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=["topic", "partition"], set_={"next_offset": stmt.excluded.next_offset}
    )


def _rows(following: dict[tuple[str, int], int]) -> list[dict[str, Any]]:
    return [{"topic": t, "partition": p, "next_offset": n} for (t, p), n in following.items()]


def local_state_engine(path: Path) -> AsyncEngine:
    """The SQLite database of a service's local state (one file per instance).

    Like the read model's engines: an error's text never carries the values bound
    (``hide_parameters``), and a value sqlite3 cannot bind (an integer beyond 64 bits, a
    lone surrogate) is the ``DataError`` PostgreSQL would raise, so the batch-fold loop
    dead-letters its record as refused data instead of crashing on it.
    """
    from shared.readmodel.db import sqlite_data_error  # here: the read model's tables import this module

    ensure_private_file(path)
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 30}, hide_parameters=True
    )
    event.listen(engine.sync_engine, "handle_error", sqlite_data_error)
    return engine
