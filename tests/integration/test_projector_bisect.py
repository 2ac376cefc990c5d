"""A batch the database refuses is bisected: its poison records are dead-lettered, the rest applied.

One batch goes through ``Projection.apply`` as the consumer hands it over. The read model
it leaves must equal the one left by applying the same records one at a time (the rule
before batches), on SQLite and on PostgreSQL; the dead-letter topic gets the poison
records, in log order, and the stored offset passes the whole batch.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from sqlalchemy import select

from services.projector.projection import Projection
from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.feedback import FeedbackRecorded
from shared.events.jobs import JobEvaluating, JobRequested, JobStarted
from shared.events.tasks import TaskUpdated
from shared.events.topics import Topics
from shared.kafka.consumer import Delivery
from shared.kafka.producer import EventLog
from shared.readmodel import tables as t
from shared.readmodel.compare import differences
from shared.readmodel.db import create_schema, make_engine
from tests.support import events as ev

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

#: Beyond every integer column of both databases.
HUGE = 2**70


def _deliveries(topic: str, envelopes: list[Envelope]) -> list[Delivery]:
    found = []
    for offset, envelope in enumerate(envelopes):
        value = codec.encode(envelope)
        record = ConsumerRecord(topic, 0, offset, 0, 0, envelope.key, value, None, 0, len(value), [])
        found.append(Delivery(topic, 0, offset, codec.decode(value), record))
    return found


def _poisoned_history() -> tuple[list[Envelope], list[Envelope]]:
    """A history with poison in the middle; returns it and its poison records, in log order."""
    task = ev.task_created()
    task_id = task.task_id
    assert task_id is not None
    job = {"job_id": uuid.uuid4(), "task_id": task_id}
    # Refused, though the next event of the batch overwrites the number before any write.
    refused = Envelope.wrap(
        JobRequested(**job, triggered_by="api_on_demand", feedback_count=HUGE, log_offset=1),
        source="optimizer",
    )
    started = Envelope.wrap(
        JobStarted(**job, worker="w", teacher_model="m", judge_model="m"), source="optimizer"
    )
    evaluating = JobEvaluating(
        **job, feedback_count=3, seed_count=0, train_size=2, val_size=1, dataset_hash="h"
    )
    nul = FeedbackRecorded(feedback_id=uuid.uuid4(), task_id=task_id, inputs={}, output="a\x00b", score=0.5)
    updated = TaskUpdated(task_id=task_id, changes={"description": "after the poison"})
    history = [
        task,
        *ev.feedback(task_id, 3),
        refused,
        started,
        Envelope.wrap(evaluating, source="optimizer"),
        Envelope.wrap(updated, source="api", correlation_id="update"),
        Envelope.wrap(nul, source="api"),
        *ev.feedback(task_id, 3),
        *ev.job_lifecycle(task_id, "success"),
    ]
    return history, [refused, history[history.index(started) + 3]]


async def _dead_letters(bootstrap: str, topic: str, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=f"dlq-{uuid.uuid4().hex}"
    )
    await consumer.start()
    try:
        got: list[Any] = []
        async with asyncio.timeout(30):
            while len(got) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got.extend(records)
        await asyncio.sleep(1)  # nothing more may come
        got.extend(r for records in (await consumer.getmany(timeout_ms=500)).values() for r in records)
        return got
    finally:
        await consumer.stop()


async def _second_database(db_url: str, tmp_path: Path) -> str:
    """Another empty read model on the same kind of database."""
    if db_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'one-by-one.db'}"
    import asyncpg

    server, name = db_url.rsplit("/", 1)[0], f"kaizen_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://") + "/postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{server}/{name}"


async def test_poison_in_the_middle_of_a_batch_is_dead_lettered_and_the_rest_applied_in_order(
    kafka_bootstrap: str, topics: Topics, db_url: str, tmp_path: Path
) -> None:
    history, poison = _poisoned_history()
    if db_url.startswith("sqlite"):
        poison = poison[:1]  # SQLite stores NUL in text; only PostgreSQL refuses it
    batch = _deliveries(topics.tasks, history)
    events = EventLog(kafka_bootstrap, topics, client_id="bisect-test")
    engine = make_engine(db_url)
    reference = make_engine(await _second_database(db_url, tmp_path))
    try:
        await create_schema(engine)
        await create_schema(reference)
        await Projection(engine, events, "bisect-test").apply(batch)
        one_at_a_time = Projection(reference, None, "reference")
        for delivery in batch:
            await one_at_a_time.apply([delivery])

        assert await differences(reference, engine) == []
        async with engine.connect() as conn:
            jobs = (await conn.execute(select(t.jobs.c.id))).scalars().all()
            task = (await conn.execute(select(t.tasks))).one()
            feedback = (await conn.execute(select(t.feedback.c.output))).scalars().all()
            offsets = (await conn.execute(select(t.projector_offsets))).all()
        assert str(poison[0].job_id) not in jobs  # the refused request made no job ...
        assert len(jobs) == 1  # ... and the job after the poison exists
        assert task.settings["description"] == "after the poison"  # applied on the row made before it
        assert len(feedback) == 6 + (len(poison) == 1)
        assert [(o.topic, o.next_offset) for o in offsets] == [(topics.tasks, len(batch))]
    finally:
        await engine.dispose()
        await reference.dispose()
        await events.stop()

    dead = await _dead_letters(kafka_bootstrap, topics.deadletter, len(poison))
    assert [r.value for r in dead] == [codec.encode(p) for p in poison]
    assert [int(dict(r.headers)["kaizen.offset"]) for r in dead] == [history.index(p) for p in poison]
    assert all(
        dict(r.headers)["kaizen.reason"].startswith(b"projection failed: the database refused") for r in dead
    )
