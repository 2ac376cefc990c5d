"""A consumer loop shared by the services: decode, dead-letter poison, hand batches over.

Two ways to track progress:

- **stored offsets** (projector, optimizer, PR publisher: ``shared.kafka.batch_fold``):
  the handler writes the next offset in the same transaction as its effects; on
  assignment the loop seeks to them, so a redelivered record is never applied twice and
  a killed process resumes exactly.
- **committed offsets**: the loop commits after the handler returned, so every record is
  processed at least once; the handler's effects must be idempotent.

A record that cannot be decoded goes to the dead-letter topic with its reason, and the
consumer moves on. Poisoned records still reach the handler as a :class:`Delivery`
without an envelope, so a stored-offset handler can record that it passed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition

from shared import logcontext, tracing
from shared.events import codec
from shared.events.envelope import Envelope
from shared.kafka.producer import EventLog
from shared.kafka.security import KafkaSecurity, client_options
from shared.loops import LoopHealth

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One record: its position, and its envelope (``None`` for a dead-lettered record)."""

    topic: str
    partition: int
    offset: int
    envelope: Envelope | None
    record: ConsumerRecord[bytes, bytes]

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class OffsetStore(Protocol):
    """Where a stored-offset consumer keeps the next offset to read per partition."""

    async def load_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]: ...


Handler = Callable[[list[Delivery]], Awaitable[None]]
AssignmentHook = Callable[[set[TopicPartition]], Awaitable[None]]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self.owner.floor.pop(tp, None)
        if self.owner.on_revoked is not None and revoked:
            await self.owner.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self.owner.consumer
        if self.owner.offsets is not None and assigned:
            stored = await self.owner.offsets.load_offsets(assigned)
            for tp in assigned:
                self.owner.floor[tp] = stored.get(tp, 0)
                if tp in stored:
                    consumer.seek(tp, stored[tp])
                else:
                    await consumer.seek_to_beginning(tp)
        if self.owner.on_assigned is not None and assigned:
            await self.owner.on_assigned(set(assigned))


class EventConsumer:
    """Consume ``topics`` as ``group_id`` and feed decoded batches to ``handler``."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topics: list[str],
        group_id: str,
        events: EventLog,
        handler: Handler,
        offsets: OffsetStore | None = None,
        max_batch: int = 500,
        instance_id: str | None = None,
        on_assigned: AssignmentHook | None = None,
        on_revoked: AssignmentHook | None = None,
        security: KafkaSecurity | None = None,
        across_partitions: bool = False,
    ) -> None:
        """``security``: how to connect; ``None`` means this process's ``KAIZEN_KAFKA_*`` settings.

        ``across_partitions``: hand the handler everything one fetch returned, from every
        partition, in one call (the projector: one transaction per fetch, not per partition).
        Otherwise each call holds one partition's records.
        """
        self.topics = topics
        self.across_partitions = across_partitions
        #: Stored-offset consumers: the next offset to apply per assigned partition, as of
        #: assignment and each handled batch, so a batch needs no read of the store.
        self.floor: dict[TopicPartition, int] = {}
        self.group_id = group_id
        self.events = events
        self.handler = handler
        self.offsets = offsets
        self.max_batch = max_batch
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            group_instance_id=instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            **client_options(security),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the handler's exceptions propagate (fail loudly)."""
        self.consumer.subscribe(self.topics, listener=_Rebalance(self))
        await self.consumer.start()
        try:
            while not stop.is_set():
                batches = await self.consumer.getmany(timeout_ms=200, max_records=self.max_batch)
                if self.across_partitions:
                    await self._handle(list(batches.values()))
                else:
                    for records in batches.values():
                        await self._handle([records])
        finally:
            await self.consumer.stop()

    async def _handle(self, batches: list[list[ConsumerRecord[bytes, bytes]]]) -> None:
        """One handler call for ``batches`` (each one partition's records, in offset order)."""
        if self.offsets is not None:
            batches = [kept for records in batches if (kept := await self._not_yet_applied(records))]
        records = [r for partition in batches for r in partition]
        if not records:
            return
        deliveries = [await self._decode(r) for r in records]
        self._log_job_events(deliveries)
        with logcontext.of_batch(d.envelope for d in deliveries), self._traced(deliveries):
            await self.handler(deliveries)
        following = {TopicPartition(p[-1].topic, p[-1].partition): p[-1].offset + 1 for p in batches}
        if self.offsets is None:
            await self.consumer.commit(following)
        else:
            self.floor.update(following)

    def _traced(self, deliveries: list[Delivery]) -> contextlib.AbstractContextManager[None]:
        """The batch's consumer span (``shared.tracing.messaging``); nothing with tracing off."""
        if not tracing.enabled():
            return contextlib.nullcontext()
        from shared.tracing import messaging

        return messaging.processing(self.group_id, deliveries)

    def _log_job_events(self, deliveries: list[Delivery]) -> None:
        """One line per job event read: a job's trail through every service's log."""
        for d in deliveries:
            if d.envelope is not None and d.envelope.job_id is not None:
                with logcontext.of_envelope(d.envelope):
                    log.info(
                        "%s read %s at %s[%d]@%d",
                        self.group_id,
                        d.envelope.type,
                        d.topic,
                        d.partition,
                        d.offset,
                    )

    async def _not_yet_applied(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Drop records below the stored offset.

        aiokafka starts fetching a newly assigned partition before the rebalance
        listener has sought to the stored offset, so the first batch can repeat records
        that were applied already. The store is the truth (read at assignment, then followed
        in memory as batches are handled); the fetch position is a hint.
        """
        assert self.offsets is not None
        if not records:
            return records
        tp = TopicPartition(records[0].topic, records[0].partition)
        stored = self.floor.get(tp)
        if stored is None:  # not assigned through the listener (yet): ask the store
            stored = (await self.offsets.load_offsets([tp])).get(tp, 0)
        if records[0].offset >= stored:
            return records
        return [r for r in records if r.offset >= stored]

    async def _decode(self, record: ConsumerRecord[bytes, bytes]) -> Delivery:
        try:
            envelope: Envelope | None = codec.decode(record.value)
        except codec.PoisonRecord as exc:
            await dead_letter(self.events, record, exc.reason, self.group_id)
            envelope = None
        return Delivery(record.topic, record.partition, record.offset, envelope, record)


async def caught_up(consumer: EventConsumer) -> set[int]:
    """Assigned partitions whose position has reached the log's end (as last fetched).

    Services that act on their state (run jobs, open PRs) wait for this: while a
    partition's history is replayed, work looks unfinished until its final event is read.
    """
    done: set[int] = set()
    for tp in consumer.consumer.assignment():
        highwater = consumer.consumer.highwater(tp)
        if highwater is not None and await consumer.consumer.position(tp) >= highwater:
            done.add(tp.partition)
    return done


#: Longer than any healthy metadata round trip; a check that takes this long is an error to retry.
CAUGHT_UP_TIMEOUT_SECONDS = 30.0


async def act_when_caught_up(
    consumer: EventConsumer,
    stop: asyncio.Event,
    act: Callable[[set[int]], Awaitable[None]],
    interval: float,
    health: LoopHealth | None = None,
) -> None:
    """Until ``stop``, every ``interval`` seconds hand ``act`` the partitions that are caught up.

    Errors propagate: run it under :class:`shared.loops.Loops`, which logs and retries
    them. ``health`` records each round as an iteration, so a round that hangs shows.
    """
    while not stop.is_set():
        with health.iteration() if health is not None else contextlib.nullcontext():
            # Asking for positions while the broker is gone can wait for ever; make it an error.
            async with asyncio.timeout(CAUGHT_UP_TIMEOUT_SECONDS):
                partitions = await caught_up(consumer)
            if partitions:
                await act(partitions)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def dead_letter(
    events: EventLog, record: ConsumerRecord[bytes, bytes], reason: str, group: str
) -> None:
    """Copy ``record`` to the dead-letter topic with why and where it failed.

    Its own headers (content type, trace context) go along, so the copy still parses as a
    CloudEvent and stays in its trace.
    """
    log.error("dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
    own = [(k, v) for k, v in (record.headers or ()) if not k.startswith("kaizen.")]
    headers = [
        *own,
        ("kaizen.reason", reason.encode()),
        ("kaizen.topic", record.topic.encode()),
        ("kaizen.partition", str(record.partition).encode()),
        ("kaizen.offset", str(record.offset).encode()),
        ("kaizen.group", group.encode()),
    ]
    await events.send_raw(events.topics.deadletter, record.value, record.key, headers)
