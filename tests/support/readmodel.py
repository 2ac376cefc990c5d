"""Polling the read model from tests, and writing rows into it as the projector does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.readmodel import tables as t
from shared.readmodel.db import make_engine


async def rows(db_url: str, table: Table, **where: object) -> list[dict[str, Any]]:
    engine = make_engine(db_url)
    try:
        query = select(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        async with engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(query)).all()]
    finally:
        await engine.dispose()


async def wait_for_job(
    db_url: str, until: Callable[[dict[str, Any]], bool], timeout: float = 240, **where: object
) -> dict[str, Any]:
    """Poll ``jobs`` until a row matching ``where`` satisfies ``until``; return it."""
    last: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                last = await rows(db_url, t.jobs, **where)
                for row in last:
                    if until(row):
                        return row
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"no job reached the expected state in {timeout} s; jobs: {last}") from None


async def job_history(db_url: str, job_id: str) -> list[str]:
    history = await rows(db_url, t.job_events, job_id=job_id)
    return [r["type"] for r in sorted(history, key=lambda r: r["log_offset"])]


async def project_task(engine: AsyncEngine, n: int) -> None:
    """A committed task row numbered ``n``, written as the projector writes: in a transaction of its own."""
    now = datetime.now(UTC)
    row = {"id": f"00000000-0000-0000-0000-{n:012d}", "name": f"task {n}", "name_key": f"task {n}"}
    rest = {"settings": {}, "deleted": False, "created_at": now, "updated_at": now}
    async with engine.begin() as conn:
        await conn.execute(insert(t.tasks).values(row | rest))


def count_tasks(conn: Connection) -> int:
    """How many task rows ``conn`` sees (a synchronous work for ``Reads.run``)."""
    return int(conn.execute(select(func.count()).select_from(t.tasks)).scalar_one())
