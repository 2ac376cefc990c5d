"""Every event type survives the real broker: encode → produce → consume → decode → equal."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from hypothesis import find

from shared.events import EVENT_TYPES, codec
from shared.events.envelope import Envelope
from shared.events.topics import Topics
from shared.kafka.producer import EventLog
from tests.support import events as ev
from tests.support.strategies import envelopes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def samples() -> list[Envelope]:
    """A minimal example of every type (found by Hypothesis) plus a realistic job history."""
    minimal = [find(envelopes(cls), lambda _: True) for cls in EVENT_TYPES.values()]
    task = ev.task_created()
    assert task.task_id is not None
    return [*minimal, task, *ev.feedback(task.task_id, 2), *ev.job_lifecycle(task.task_id, "pr_created")]


async def test_every_event_type_round_trips_through_the_broker(kafka_bootstrap: str, topics: Topics) -> None:
    sent = samples()
    assert {e.type for e in sent} == set(EVENT_TYPES)
    log = EventLog(kafka_bootstrap, topics, client_id="roundtrip")
    try:
        positions = await log.append_all(sent)
    finally:
        await log.stop()
    received = await _consume(kafka_bootstrap, {p.topic for p in positions}, len(sent))
    by_id = {e.id: e for e in received}
    for envelope in sent:
        assert by_id[envelope.id] == envelope
    task_scoped = [e for e in sent if e.data.SCOPE == "task"]
    assert all(p.topic == topics.tasks for p, e in zip(positions, sent, strict=True) if e in task_scoped)


async def test_one_task_s_events_share_one_partition_in_order(kafka_bootstrap: str, topics: Topics) -> None:
    task = ev.task_created()
    assert task.task_id is not None
    history = [task, *ev.feedback(task.task_id, 5), *ev.job_lifecycle(task.task_id)]
    log = EventLog(kafka_bootstrap, topics, client_id="ordering")
    try:
        positions = [await log.append(e) for e in history]
    finally:
        await log.stop()
    assert len({p.partition for p in positions}) == 1
    assert [p.offset for p in positions] == sorted(p.offset for p in positions)


async def _consume(bootstrap: str, topic_names: set[str], count: int) -> list[Envelope]:
    consumer = AIOKafkaConsumer(
        *sorted(topic_names),
        bootstrap_servers=bootstrap,
        group_id=f"roundtrip-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: list[Envelope] = []
    try:
        async with asyncio.timeout(60):
            while len(received) < count:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    received += [codec.decode(r.value) for r in records]
    finally:
        await consumer.stop()
    return received
