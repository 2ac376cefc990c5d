"""The projector's writes: dialect-neutral upserts (offsets live in ``shared.kafka.offsets``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.kafka.offsets import dialect_insert


async def upsert(conn: AsyncConnection, table: Table, values: Mapping[str, Any], keys: list[str]) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE, on SQLite and PostgreSQL alike."""
    stmt = dialect_insert(conn, table).values(**values)
    updates = {k: v for k, v in values.items() if k not in keys}
    await conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))


async def insert_ignore(conn: AsyncConnection, table: Table, values: Mapping[str, Any]) -> bool:
    """INSERT unless the primary key exists; returns whether a row was inserted."""
    result = await conn.execute(dialect_insert(conn, table).values(**values).on_conflict_do_nothing())
    return bool(result.rowcount)
