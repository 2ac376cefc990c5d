"""What ``/health`` reads from the read model: the projector's offsets and heartbeats."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.readmodel.tables import heartbeats, projector_offsets


async def offsets(conn: AsyncConnection) -> dict[tuple[str, int], int]:
    rows = (await conn.execute(select(projector_offsets))).all()
    return {(r.topic, r.partition): r.next_offset for r in rows}


async def latest_heartbeats(conn: AsyncConnection) -> list[Any]:
    query = select(heartbeats).order_by(heartbeats.c.service, heartbeats.c.time.desc())
    return list((await conn.execute(query)).all())
