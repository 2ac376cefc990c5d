"""The Events page's source: the log itself, read from Kafka, not the read model.

Each open Events page has its own consumer (no group, nothing committed): it reads the
last ``backlog`` records of every partition of the chosen topics, hands them over in
time order, then follows the log until the page goes away. Secrets stay out of the
page: ciphertexts, key hashes and DSPy state are replaced by a marker.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from shared.events import codec
from shared.kafka.security import client_options

HIDDEN_FIELDS = frozenset({"git_token_encrypted", "key_hash", "dspy_state"})
DATA_CHARS = 400
POLL_MS = 500


@dataclass(frozen=True)
class LogEntry:
    topic: str
    partition: int
    offset: int
    time: datetime | None
    type: str
    source: str
    task_id: str | None
    job_id: str | None
    correlation_id: str | None
    data: str

    @property
    def anchor(self) -> str:
        return f"{self.topic}-{self.partition}-{self.offset}"


def hide_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "[hidden]" if k in HIDDEN_FIELDS and v else hide_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [hide_secrets(v) for v in value]
    return value


def entry(topic: str, partition: int, offset: int, value: bytes | None) -> LogEntry:
    try:
        envelope = codec.decode(value)
    except codec.PoisonRecord as exc:
        return LogEntry(topic, partition, offset, None, "(undecodable)", "?", None, None, None, exc.reason)
    data = json.dumps(hide_secrets(envelope.data.model_dump(mode="json")), ensure_ascii=False)
    if len(data) > DATA_CHARS:
        data = data[:DATA_CHARS] + "…"
    return LogEntry(
        topic,
        partition,
        offset,
        envelope.time,
        envelope.type,
        envelope.source,
        str(envelope.task_id) if envelope.task_id else None,
        str(envelope.job_id) if envelope.job_id else None,
        envelope.correlation_id,
        data,
    )


async def follow(
    bootstrap: str,
    topics: list[str],
    backlog: int,
    keep_going: Callable[[], Awaitable[bool]],
) -> AsyncIterator[LogEntry]:
    """The last ``backlog`` records of each partition (oldest first), then every new one."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **client_options(),
    )
    try:
        await consumer.start()
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in await _partitions(consumer, topic)
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, max(starts[tp], ends[tp] - backlog))
        past: list[LogEntry] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=POLL_MS)
            past += [
                entry(tp.topic, tp.partition, r.offset, r.value) for tp, rs in batches.items() for r in rs
            ]
        for old in sorted(past, key=lambda e: e.time.timestamp() if e.time else 0.0):
            yield old
        while await keep_going():
            batches = await consumer.getmany(timeout_ms=POLL_MS)
            for tp, records in batches.items():
                for record in records:
                    yield entry(tp.topic, tp.partition, record.offset, record.value)
    finally:
        with contextlib.suppress(KafkaError, OSError):
            await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    # As the projector does: tracking the topic makes the client fetch and keep its metadata
    # (``consumer.topics()`` returns metadata without caching it).
    await consumer._client.add_topic(topic)
    return sorted(consumer.partitions_for_topic(topic) or ())
