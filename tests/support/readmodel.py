"""Polling the read model from tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from shared.readmodel import tables as t
from shared.readmodel.db import make_engine


async def rows(db_url: str, table: t.Table, **where: object) -> list[dict[str, Any]]:
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
