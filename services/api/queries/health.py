"""What the health routes read from the read model: offsets, heartbeats, loops, a ping."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.readmodel.tables import heartbeats, projector_offsets, service_loops


async def offsets(conn: AsyncConnection) -> dict[tuple[str, int], int]:
    rows = (await conn.execute(select(projector_offsets))).all()
    return {(r.topic, r.partition): r.next_offset for r in rows}


async def latest_heartbeats(conn: AsyncConnection) -> list[Any]:
    query = select(heartbeats).order_by(heartbeats.c.service, heartbeats.c.time.desc())
    return list((await conn.execute(query)).all())


async def loops_by_instance(conn: AsyncConnection) -> dict[str, list[Any]]:
    """Each instance's loops as its latest heartbeat reported them, by loop name."""
    rows = (await conn.execute(select(service_loops).order_by(service_loops.c.loop))).all()
    found: dict[str, list[Any]] = {}
    for row in rows:
        found.setdefault(row.instance, []).append(row)
    return found


async def ping(conn: AsyncConnection) -> None:
    await conn.execute(text("SELECT 1"))
