"""SIGKILL the projector in the middle of a burst: after a restart no row is missing or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from shared.events.topics import Topics
from shared.kafka.producer import EventLog
from shared.readmodel import tables as t
from shared.readmodel.db import make_engine
from tests.support import events as ev

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
BURST = 3000


async def _count(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(t.feedback)) or 0)
    except Exception:  # the projector has not created the schema yet
        return 0
    finally:
        await engine.dispose()


async def _projector(
    kafka_bootstrap: str, topics: Topics, db_url: str, home: Path
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "KAIZEN_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "KAIZEN_TOPIC_PREFIX": topics.prefix,
        "KAIZEN_DATABASE_URL": db_url,
        "KAIZEN_HOME": str(home),
        "KAIZEN_PARTITIONS": "3",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.projector",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_a_killed_projector_resumes_exactly_where_it_stopped(
    kafka_bootstrap: str, topics: Topics, db_url: str, tmp_path: Path
) -> None:
    tasks = [ev.task_created(f"task-{i}") for i in range(6)]
    burst = [e for i in range(BURST) for e in ev.feedback(tasks[i % 6].task_id, 1)]  # type: ignore[arg-type]
    log = EventLog(kafka_bootstrap, topics, client_id="kill-test")
    projector = await _projector(kafka_bootstrap, topics, db_url, tmp_path)
    try:
        await log.append_all(tasks)
        for start in range(0, BURST, 500):
            await log.append_all(burst[start : start + 500])
        async with asyncio.timeout(120):
            while (seen := await _count(db_url)) < BURST // 10:
                await asyncio.sleep(0.05)
        projector.send_signal(signal.SIGKILL)
        await projector.wait()
        assert seen < BURST, "the projector finished before it could be killed; make the burst bigger"
        projector = await _projector(kafka_bootstrap, topics, db_url, tmp_path)
        async with asyncio.timeout(120):
            while await _count(db_url) < BURST:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1)  # anything applied twice would show up now
    finally:
        if projector.returncode is None:
            projector.send_signal(signal.SIGTERM)
            await projector.wait()
        await log.stop()
    engine = make_engine(db_url)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(t.feedback.c.id))).scalars().all()
        tasks_seen = await conn.scalar(select(func.count()).select_from(t.tasks))
        counted = (await conn.execute(select(t.tasks.c.live_feedback))).scalars().all()
    await engine.dispose()
    assert len(rows) == BURST == len(set(rows))
    assert {str(e.data.feedback_id) for e in burst} == set(rows)  # type: ignore[attr-defined]
    assert tasks_seen == 6
    # The tasks' counters are written with the rows: a batch applied twice would count twice.
    assert sorted(counted) == [BURST // 6] * 6
