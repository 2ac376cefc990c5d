"""Data the optimizer's or the PR publisher's state refuses is dead-lettered; neither crash-loops on it.

Each service runs for real (``run_optimizer``, ``run_publisher``) against the broker, with
its SQLite state in a file. The poison record reaches the log as a buggy or hostile
producer would write it: a text with a lone surrogate (a JSON ``\\ud800`` escape), which
the API refuses and sqlite3 cannot store. The service dead-letters it with its reason,
folds the records after it, and after a restart resumes past them: nothing is folded,
dead-lettered or decided twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import Table, select
from sqlalchemy.exc import OperationalError

from services.optimizer import adapters as optimizer_state
from services.pr_publisher import state as publisher_state
from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded
from shared.events.jobs import OptimizationRequested
from shared.events.prompts import PromptActivated, PromptVersionCreated
from shared.events.topics import Topics
from shared.kafka.offsets import local_state_engine
from shared.kafka.producer import EventLog, Position
from tests.support import events as ev
from tests.support.system import TEST_SECRET_KEY

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MARK = "LONE-SURROGATE"


def _unstorable(envelope: Envelope) -> bytes:
    """``envelope`` as bytes, its ``MARK`` replaced by a lone surrogate (our codec writes none)."""
    value = codec.encode(envelope)
    assert MARK.encode() in value
    return value.replace(MARK.encode(), b"a\\ud800b")


async def _append_raw(events: EventLog, envelope: Envelope, value: bytes) -> None:
    await events.send_raw(events.topics.tasks, value, envelope.key, codec.headers())


async def _records(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` now (read until two empty fetches in a row)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=f"read-{uuid.uuid4().hex}"
    )
    await consumer.start()
    try:
        got: list[Any] = []
        empty = 0
        while empty < 2:
            fetched = [r for records in (await consumer.getmany(timeout_ms=1000)).values() for r in records]
            got.extend(fetched)
            empty = 0 if fetched else empty + 1
        return got
    finally:
        await consumer.stop()


async def _rows(path: Path, table: Table) -> list[Any]:
    engine = local_state_engine(path)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(select(table))).all())
    finally:
        await engine.dispose()


@asynccontextmanager
async def _running(
    service: Coroutine[Any, Any, None], stop: asyncio.Event
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(service)
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _wait_folded(task: asyncio.Task[None], path: Path, offsets: Table, position: Position) -> None:
    """Wait until the service's stored offset has passed ``position``."""
    async with asyncio.timeout(60):
        while True:
            if task.done():
                task.result()  # raises what stopped the service
                raise AssertionError("the service stopped")
            with contextlib.suppress(OperationalError):  # the service has not made its tables yet
                stored = {(r.topic, r.partition): r.next_offset for r in await _rows(path, offsets)}
                if stored.get((position.topic, position.partition), 0) > position.offset:
                    return
            await asyncio.sleep(0.1)


def _optimizer(
    bootstrap: str, topics: Topics, path: Path
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    from services.optimizer.bootstrap import run_optimizer
    from services.optimizer.specs import ModelDefaults

    defaults = ModelDefaults("openai/none", "openai/none", "http://127.0.0.1:9/v1", 60)
    return lambda stop: run_optimizer(
        bootstrap, topics, path, defaults, stop, heartbeat_seconds=1.0, group_id=f"{topics.prefix}-optimizer"
    )


def _publisher(
    bootstrap: str, topics: Topics, path: Path
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    from cryptography.fernet import Fernet

    from services.pr_publisher.bootstrap import run_publisher

    return lambda stop: run_publisher(
        bootstrap,
        topics,
        path,
        Fernet(TEST_SECRET_KEY),
        stop,
        heartbeat_seconds=1.0,
        group_id=f"{topics.prefix}-publisher",
    )


def _reason(record: Any) -> str:
    return str(dict(record.headers)["kaizen.reason"].decode())


def _feedback(task_id: uuid.UUID, output: str) -> Envelope:
    event = FeedbackRecorded(
        feedback_id=uuid.uuid4(), task_id=task_id, inputs={"ticket": "t"}, output=output, score=0.9
    )
    return Envelope.wrap(event, source="api")


async def test_the_optimizer_dead_letters_feedback_its_store_refuses_and_folds_on_without_doubling(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    path = tmp_path / "optimizer.db"
    run = _optimizer(kafka_bootstrap, topics, path)
    task = ev.task_created("tickets", feedback_threshold=100, input_schema=["ticket"])
    assert task.task_id is not None
    early = Envelope.wrap(OptimizationRequested(task_id=task.task_id, job_id=uuid.uuid4()), source="api")
    poison = _feedback(task.task_id, MARK)
    later = [_feedback(task.task_id, f"fine {i}") for i in range(2)]
    events = EventLog(kafka_bootstrap, topics, client_id="test")
    try:
        stop = asyncio.Event()
        async with _running(run(stop), stop) as service:
            await events.append_all([task, early])
            await _append_raw(events, poison, _unstorable(poison))
            positions = await events.append_all(later)
            await _wait_folded(service, path, optimizer_state.offsets, positions[-1])
        stop = asyncio.Event()
        async with _running(run(stop), stop) as service:  # a restart
            last = _feedback(task.task_id, "after the restart")
            await _wait_folded(service, path, optimizer_state.offsets, await events.append(last))
    finally:
        await events.stop()

    [dead] = await _records(kafka_bootstrap, topics.deadletter)  # once, not again after the restart
    assert dead.value == _unstorable(poison)
    assert int(dict(dead.headers)["kaizen.offset"]) == positions[0].offset - 1
    reason = _reason(dead)
    assert reason.startswith("trigger fold failed: the database refused the data"), reason
    assert "INSERT INTO examples" in reason and "ud800" not in reason
    stored = {r.id for r in await _rows(path, optimizer_state.examples)}
    assert stored == {str(e.data.feedback_id) for e in [*later, last]}  # type: ignore[attr-defined]
    [state] = await _rows(path, optimizer_state.task_states)
    assert state.state["examples"] == 3  # each kept feedback counted once, the poison not at all
    decisions = [codec.decode(r.value) for r in await _records(kafka_bootstrap, topics.tasks)]
    rejections = [d for d in decisions if d.type == "kaizen.job.optimization_rejected.v1"]
    assert [r.data.job_id for r in rejections] == [early.data.job_id]  # type: ignore[attr-defined]


async def test_the_publisher_dead_letters_a_version_its_state_refuses_and_folds_on_without_doubling(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    path = tmp_path / "publisher.db"
    run = _publisher(kafka_bootstrap, topics, path)
    task = ev.task_created("tickets")
    assert task.task_id is not None

    def version(text: str) -> Envelope:
        event = PromptVersionCreated(
            prompt_version_id=uuid.uuid4(), task_id=task.task_id, job_id=None, prompt_text=text
        )
        return Envelope.wrap(event, source="api")

    poison, fine = version(MARK), version("Summarize the ticket.")
    fine_id = fine.data.prompt_version_id  # type: ignore[attr-defined]
    activated = Envelope.wrap(PromptActivated(task_id=task.task_id, prompt_version_id=fine_id), source="api")
    events = EventLog(kafka_bootstrap, topics, client_id="test")
    try:
        stop = asyncio.Event()
        async with _running(run(stop), stop) as service:
            await events.append(task)
            await _append_raw(events, poison, _unstorable(poison))
            positions = await events.append_all([fine, activated])
            await _wait_folded(service, path, publisher_state.offsets, positions[-1])
        stop = asyncio.Event()
        async with _running(run(stop), stop) as service:  # a restart
            last = version("Summarize the ticket in one line.")
            await _wait_folded(service, path, publisher_state.offsets, await events.append(last))
    finally:
        await events.stop()

    [dead] = await _records(kafka_bootstrap, topics.deadletter)  # once, not again after the restart
    assert dead.value == _unstorable(poison)
    assert int(dict(dead.headers)["kaizen.offset"]) == positions[0].offset - 1
    reason = _reason(dead)
    assert reason.startswith("publisher fold failed: the database refused the data"), reason
    assert "INSERT INTO versions" in reason
    versions = {r.id: r.status for r in await _rows(path, publisher_state.versions)}
    assert versions == {str(fine_id): "active", str(last.data.prompt_version_id): "draft"}  # type: ignore[attr-defined]
