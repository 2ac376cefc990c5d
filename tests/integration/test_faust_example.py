"""The faust example counts jobs by status per task from the real log, as a downstream team runs it.

The worker runs as a subprocess (faust owns its process: signals, event loop, shutdown),
with a fresh app id, the test's topic prefix and a temporary data dir. Records are
appended by Kaizen's own producer, plus one job written in the envelope v1 layout, as
an old log holds it. The test reads the JSON lines the app prints until every task's
counts are what the history says, and restarts the worker once to show the table is
recovered from its changelog, not recounted from the log.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest

from shared.events import codec
from shared.events.topics import Topics
from shared.kafka.producer import EventLog
from tests.support import events as ev
from tests.support.legacy_records import v1_value

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

APP = Path(__file__).resolve().parents[2] / "examples" / "faust_job_counter" / "app.py"
PARTITIONS = 3  # the ``topics`` fixture's


class Worker:
    """``app.py worker`` in a subprocess; ``counts`` holds the last line printed per task."""

    def __init__(self, bootstrap: str, topics: Topics, app_id: str, datadir: Path) -> None:
        self.env = {
            **os.environ,
            "KAIZEN_KAFKA_BOOTSTRAP": bootstrap,
            "KAIZEN_TOPIC_PREFIX": topics.prefix,
            "KAIZEN_PARTITIONS": str(PARTITIONS),
            "JOB_COUNTER_ID": app_id,
            "JOB_COUNTER_DATADIR": str(datadir),
        }
        self.log = datadir.parent / f"{datadir.name}-{uuid.uuid4().hex[:6]}.log"
        self.counts: dict[str, dict[str, int]] = {}
        self.lines = 0
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("wb") as stderr:  # a file, not a pipe nobody drains while it runs
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(APP),
                "worker",
                "--loglevel=info",
                env=self.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )

    async def wait_for(self, expected: dict[str, dict[str, int]], timeout: float) -> None:
        assert self.process is not None and self.process.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while {t: self.counts.get(t) for t in expected} != expected:
                    line = await self.process.stdout.readline()
                    if not line:
                        raise AssertionError(f"the worker exited: {self.stderr()}")
                    if not line.startswith(b"{"):  # faust's start-up banner
                        continue
                    change = json.loads(line)
                    self.counts[change["task"]] = change["counts"]
                    self.lines += 1
        except TimeoutError:
            await self.stop()
            raise AssertionError(f"counts {self.counts} after {timeout} s; stderr: {self.stderr()}") from None

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:  # faust's shutdown has hung before; never let it hang the run
            self.process.kill()
            await self.process.wait()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


async def test_the_faust_example_counts_jobs_by_status_per_task(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    first, second = ev.task_created("first"), ev.task_created("second")
    assert first.task_id is not None and second.task_id is not None
    a, b = str(first.task_id), str(second.task_id)
    history = [
        first,
        second,
        *ev.feedback(first.task_id, 2),
        *ev.job_lifecycle(first.task_id, "pr_created", trials=1),
        *ev.job_lifecycle(first.task_id, "failed"),
        *ev.job_lifecycle(second.task_id, "pr_failed", trials=1),
        *ev.job_lifecycle(second.task_id)[:1],  # requested, not started: PENDING
    ]
    old_job = ev.job_lifecycle(second.task_id, "success", trials=1)  # written by an older Kaizen
    log = EventLog(kafka_bootstrap, topics, client_id="faust-example")
    try:
        await log.append_all(history)
        for envelope in old_job:
            await log.send_raw(topics.tasks, v1_value(envelope), envelope.key, [])
    finally:
        await log.stop()
    assert all(codec.decode(v1_value(e)) == e for e in old_job)

    expected = {a: {"SUCCESS": 1, "FAILED": 1}, b: {"PR_FAILED": 1, "PENDING": 1, "SUCCESS": 1}}
    app_id = f"{topics.prefix}-job-counter"
    worker = Worker(kafka_bootstrap, topics, app_id, tmp_path / "faust")
    await worker.start()
    try:
        await worker.wait_for(expected, timeout=120)
    finally:
        await worker.stop()

    # A restarted worker recovers its tables from the changelog: one more job event of
    # the first task moves its counts on from there instead of starting again at zero.
    log = EventLog(kafka_bootstrap, topics, client_id="faust-example")
    try:
        await log.append_all(ev.job_lifecycle(first.task_id, "success", trials=1)[:1])
    finally:
        await log.stop()
    again = Worker(kafka_bootstrap, topics, app_id, tmp_path / "faust")
    await again.start()
    try:
        await again.wait_for({a: {"SUCCESS": 1, "FAILED": 1, "PENDING": 1}}, timeout=90)
    finally:
        await again.stop()
    assert again.lines == 1  # only the new record was processed; the rest came from the changelog
