"""Reads queued while a trip runs go together in the next one, and are never answered from an older read."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.reads import Reads
from shared.readmodel.db import create_schema, make_engine
from tests.support.readmodel import count_tasks, project_task

pytestmark = pytest.mark.timeout(30)


class Gate:
    """Holds the reads thread inside a work until the test opens it, so the test can queue more."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()

    def hold(self, conn: Connection) -> int:
        counted = count_tasks(conn)  # this work's snapshot is taken before it waits
        self.entered.set()
        assert self.opened.wait(10)
        return counted

    async def entered_by_reads(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10)


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'readmodel.db'}")
    await create_schema(engine)
    yield engine
    await engine.dispose()


async def test_reads_queued_during_a_trip_run_in_the_next_trip_on_one_connection(engine: AsyncEngine) -> None:
    reads, gate = Reads(engine), Gate()
    checkouts: list[object] = []
    assert reads.twin is not None
    event.listen(reads.twin, "checkout", lambda *_: checkouts.append(1))
    try:
        first = asyncio.create_task(reads.run(gate.hold))
        await gate.entered_by_reads()
        queued = [asyncio.create_task(reads.run(count_tasks)) for _ in range(8)]
        await asyncio.sleep(0)
        gate.opened.set()
        assert await first == 0
        assert await asyncio.gather(*queued) == [0] * 8
        assert len(checkouts) == 2  # the first trip's connection, then one for all eight
    finally:
        gate.opened.set()
        await reads.dispose()


async def test_callers_sharing_a_key_in_one_trip_run_the_work_once(engine: AsyncEngine) -> None:
    reads, gate = Reads(engine), Gate()
    runs: list[int] = []

    def counted(conn: Connection) -> int:
        runs.append(1)
        return count_tasks(conn)

    try:
        await project_task(engine, 1)
        first = asyncio.create_task(reads.run(gate.hold))
        await gate.entered_by_reads()
        shared = [asyncio.create_task(reads.run(counted, share=("count",))) for _ in range(5)]
        other = asyncio.create_task(reads.run(counted, share=("another",)))
        await asyncio.sleep(0)
        gate.opened.set()
        await first
        assert await asyncio.gather(*shared) == [1] * 5
        assert await other == 1
        assert len(runs) == 2
    finally:
        gate.opened.set()
        await reads.dispose()


async def test_a_shared_read_asked_after_a_commit_never_gets_the_answer_of_a_read_begun_before(
    engine: AsyncEngine,
) -> None:
    reads, gate = Reads(engine), Gate()
    try:
        before = asyncio.create_task(reads.run(gate.hold, share=("count",)))
        await gate.entered_by_reads()  # that read's snapshot is taken: no task yet
        await project_task(engine, 1)
        after = asyncio.create_task(reads.run(count_tasks, share=("count",)))
        await asyncio.sleep(0)
        gate.opened.set()
        assert await before == 0
        assert await after == 1
    finally:
        gate.opened.set()
        await reads.dispose()


async def test_a_failing_work_fails_only_its_own_callers(engine: AsyncEngine) -> None:
    reads, gate = Reads(engine), Gate()

    def broken(_conn: Connection) -> int:
        raise LookupError("this work's own error")

    try:
        first = asyncio.create_task(reads.run(gate.hold))
        await gate.entered_by_reads()
        failing = [asyncio.create_task(reads.run(broken, share=("broken",))) for _ in range(2)]
        fine = asyncio.create_task(reads.run(count_tasks))
        await asyncio.sleep(0)
        gate.opened.set()
        await first
        for task in failing:
            with pytest.raises(LookupError, match="own error"):
                await task
        assert await fine == 0
        assert await reads.run(count_tasks) == 0  # the connection is fine for the next trip
    finally:
        gate.opened.set()
        await reads.dispose()


async def test_a_cancelled_caller_leaves_the_others_of_its_trip_their_answer(engine: AsyncEngine) -> None:
    reads, gate = Reads(engine), Gate()
    try:
        first = asyncio.create_task(reads.run(gate.hold))
        await gate.entered_by_reads()
        gone = asyncio.create_task(reads.run(count_tasks, share=("count",)))
        stays = asyncio.create_task(reads.run(count_tasks, share=("count",)))
        await asyncio.sleep(0)
        gone.cancel()
        gate.opened.set()
        await first
        assert await stays == 0
        assert gone.cancelled()
    finally:
        gate.opened.set()
        await reads.dispose()


async def test_a_trip_that_cannot_connect_fails_its_reads_and_the_next_trip_connects(tmp_path: Path) -> None:
    folder = tmp_path / "readmodel"
    folder.mkdir()
    engine = make_engine(f"sqlite+aiosqlite:///{folder / 'readmodel.db'}")
    await create_schema(engine)
    await engine.dispose()
    reads = Reads(engine)
    try:
        folder.rename(tmp_path / "away")  # the reads' first connection has nowhere to open
        failed = await asyncio.gather(
            reads.run(count_tasks), reads.run(count_tasks, share=("count",)), return_exceptions=True
        )
        assert [type(error) for error in failed] == [OperationalError, OperationalError]
        assert "unable to open" in str(failed[0])
        (tmp_path / "away").rename(folder)
        assert await reads.run(count_tasks) == 0
    finally:
        await reads.dispose()
        await engine.dispose()
