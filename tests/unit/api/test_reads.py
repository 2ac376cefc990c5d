"""The API's read runner on a real SQLite file: one trip per read, read only, never stale."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.reads import Reads
from shared.readmodel.db import create_schema, make_engine
from shared.readmodel.tables import tasks

pytestmark = pytest.mark.timeout(30)


def _task(n: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "name": f"task {n}",
        "name_key": f"task {n}",
        "settings": {},
        "deleted": False,
        "created_at": now,
        "updated_at": now,
    }


async def _project(engine: AsyncEngine, n: int) -> None:
    """Write a task row as the projector does: through its own engine, committed."""
    async with engine.begin() as conn:
        await conn.execute(insert(tasks).values(_task(n)))


def _names(conn: Connection) -> list[str]:
    return [row.name for row in conn.execute(select(tasks).order_by(tasks.c.name))]


async def test_each_read_sees_every_commit_the_projector_made_before_it(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'readmodel.db'}")
    await create_schema(engine)
    reads = Reads(engine)
    try:
        assert reads.one_trip
        await _project(engine, 1)
        assert await reads.run(_names) == ["task 1"]
        await _project(engine, 2)  # the reader's kept connection must not hold an old snapshot
        assert await reads.run(_names) == ["task 1", "task 2"]
    finally:
        await reads.dispose()
        await engine.dispose()


async def test_reads_run_off_the_event_loop_on_a_connection_that_cannot_write(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'readmodel.db'}")
    await create_schema(engine)
    reads = Reads(engine)
    try:
        loop_thread = threading.get_ident()
        assert await reads.run(lambda _conn: threading.get_ident()) != loop_thread
        with pytest.raises(OperationalError, match="readonly"):
            await reads.run(lambda conn: conn.execute(insert(tasks).values(_task(3))))
        assert await reads.run(_names) == []
    finally:
        await reads.dispose()
        await engine.dispose()


async def test_an_in_memory_read_model_is_read_through_the_async_engine() -> None:
    engine = make_engine("sqlite+aiosqlite:///:memory:")
    await create_schema(engine)
    reads = Reads(engine)
    try:
        assert not reads.one_trip
        assert await reads.run(_names) == []
    finally:
        await reads.dispose()
        await engine.dispose()
