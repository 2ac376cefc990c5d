"""Records as the broker hands them out are CloudEvents the official SDK's Kafka binding accepts.

Every event type is appended by Kaizen's producer, consumed raw (key, value, headers) and
parsed with ``cloudevents.core.bindings.kafka``; attributes and data must be what we sent.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat
from hypothesis import find

from shared.events import EVENT_TYPES, codec
from shared.events.envelope import Envelope
from shared.events.topics import Topics
from shared.kafka.producer import EventLog
from tests.support import events as ev
from tests.support.strategies import envelopes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def samples() -> list[Envelope]:
    """A minimal example of every type plus a realistic job history (with causation ids)."""
    minimal = [find(envelopes(cls), lambda _: True) for cls in EVENT_TYPES.values()]
    task = ev.task_created()
    assert task.task_id is not None
    return [*minimal, task, *ev.job_lifecycle(task.task_id, "pr_created")]


async def test_every_record_on_the_broker_parses_with_the_sdk_kafka_binding(
    kafka_bootstrap: str, topics: Topics
) -> None:
    sent = samples()
    log = EventLog(kafka_bootstrap, topics, client_id="cloudevents")
    try:
        positions = await log.append_all(sent)
    finally:
        await log.stop()
    records = await _consume(kafka_bootstrap, {p.topic for p in positions}, len(sent))
    by_id = {e.id: e for e in sent}
    assert len(records) == len(sent)
    for record in records:
        headers = dict(record.headers)
        assert headers["content-type"] == b"application/cloudevents+json"
        message = kafka.KafkaMessage(headers=headers, key=record.key, value=record.value or b"")
        parsed = kafka.from_kafka(message, JSONFormat())  # detects structured mode by itself
        envelope = by_id[uuid.UUID(parsed.get_id())]
        assert parsed.get_type() == envelope.type and parsed.get_source() == envelope.source
        assert parsed.get_time() == envelope.time and parsed.get_subject() == envelope.subject
        assert parsed.get_extension("partitionkey") == envelope.key.decode() == record.key.decode()
        for name, value in (
            ("taskid", envelope.task_id),
            ("jobid", envelope.job_id),
            ("correlationid", envelope.correlation_id),
            ("causationid", envelope.causation_id),
        ):
            assert parsed.get_extension(name) == (str(value) if value is not None else None)
        assert parsed.get_data() == envelope.data.model_dump(mode="json")
        assert codec.decode(kafka.to_structured(parsed, JSONFormat()).value) == envelope


async def _consume(bootstrap: str, topic_names: set[str], count: int) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        *sorted(topic_names),
        bootstrap_servers=bootstrap,
        group_id=f"cloudevents-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(60):
            while len(received) < count:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    received += batch
    finally:
        await consumer.stop()
    return received
