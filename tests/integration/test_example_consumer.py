"""The downstream example follows job events with plain aiokafka and the published schemas."""

from __future__ import annotations

import asyncio
import sys

import pytest

from shared.events.topics import Topics
from shared.kafka.producer import EventLog
from tests.support import events as ev

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_the_example_prints_each_job_event_of_the_log(kafka_bootstrap: str, topics: Topics) -> None:
    task = ev.task_created()
    assert task.task_id is not None
    history = ev.job_lifecycle(task.task_id, "pr_created", trials=2)
    log = EventLog(kafka_bootstrap, topics, client_id="example-test")
    try:
        await log.append_all([task, *ev.feedback(task.task_id, 3), *history])
    finally:
        await log.stop()
    job_events = [e for e in history if e.type.startswith(("kaizen.job.", "kaizen.pr."))]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "examples/follow_jobs.py",
        "--bootstrap",
        kafka_bootstrap,
        "--prefix",
        topics.prefix,
        "--group",
        f"{topics.prefix}-example",
        "--limit",
        str(len(job_events)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert [line.split()[3] for line in lines] == [e.type for e in job_events]
    assert "http://git.test/o/r/pull/1" in lines[-1]
