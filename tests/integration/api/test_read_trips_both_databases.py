"""The API's reads go in trips on both read models, and sharing a query never serves an older read.

On a SQLite file a trip is one hand-off to the reads thread; on PostgreSQL one pool
checkout, and several trips may run at once. Either way: callers that ask for the same
thing before a trip starts share one query, a read asked after a commit sees it, and a
work that fails fails only its own callers (PostgreSQL aborts the failed transaction;
the next work on the connection must not inherit that).
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.reads import Reads
from tests.support.readmodel import count_tasks, project_task

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_callers_asking_the_same_before_a_trip_starts_share_one_query(engine: AsyncEngine) -> None:
    reads, runs = Reads(engine), []

    def counted(conn: Connection) -> int:
        runs.append(1)
        return count_tasks(conn)

    try:
        await project_task(engine, 1)
        answers = await asyncio.gather(*(reads.run(counted, share=("count",)) for _ in range(6)))
        assert answers == [1] * 6
        assert len(runs) == 1
    finally:
        await reads.dispose()


async def test_a_read_asked_after_a_commit_sees_it_while_an_older_shared_read_is_still_running(
    engine: AsyncEngine,
) -> None:
    reads = Reads(engine)
    counted_before = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_count(conn: Connection) -> int:
        counted = count_tasks(conn)  # this read's answer is fixed before the commit below
        loop.call_soon_threadsafe(counted_before.set)
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_sleep(0.5)"))  # the event loop runs on meanwhile
        else:
            import time

            time.sleep(0.5)  # in the reads thread: the event loop runs on meanwhile
        return counted

    try:
        before = asyncio.create_task(reads.run(slow_count, share=("count",)))
        await asyncio.wait_for(counted_before.wait(), 10)
        await project_task(engine, 1)
        after = await reads.run(count_tasks, share=("count",))
        assert after == 1
        assert await before == 0
    finally:
        await reads.dispose()


async def test_a_failing_work_fails_only_its_own_callers(engine: AsyncEngine) -> None:
    reads = Reads(engine)

    def broken(conn: Connection) -> int:
        return int(conn.execute(text("SELECT count(*) FROM no_such_table")).scalar_one())

    try:
        await project_task(engine, 1)
        results = await asyncio.gather(
            reads.run(count_tasks), reads.run(broken), reads.run(count_tasks), return_exceptions=True
        )
        assert results[0] == 1 and results[2] == 1
        assert isinstance(results[1], Exception)
        assert "no_such_table" in str(results[1]) or isinstance(results[1], ProgrammingError)
        assert await reads.run(count_tasks) == 1
    finally:
        await reads.dispose()
