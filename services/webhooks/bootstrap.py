"""The one place the webhooks service's real connections are built, and its consumer loop.

The loop is plain aiokafka (ADR 0002, 0005): it never waits for a receiver. It hands
each record to the :class:`Dispatcher` and keeps polling; it commits, per partition, the
first offset whose deliveries are not all settled (:class:`Ledger`), so whatever was
in flight when the process died is delivered again after its restart. A partition with
too many open records is paused until its lanes catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from cryptography.fernet import Fernet

from services.webhooks import GROUP, SERVICE_NAME, domain
from services.webhooks.adapters import AttemptLog, HttpReceiver, Receiver, SubscriptionFeed
from services.webhooks.handlers import Subscriptions
from services.webhooks.lanes import Dispatcher, Policy
from shared import metrics
from shared.events import codec
from shared.events.topics import Topics
from shared.kafka.consumer import dead_letter
from shared.kafka.producer import EventLog
from shared.kafka.security import client_options
from shared.loops import Loops
from shared.secrets import TokenUnreadable, decrypt_token
from shared.service import instance_name, spawn_heartbeat

log = logging.getLogger(__name__)

#: Open records per partition before it is paused (resumed below half of it).
MAX_OPEN_RECORDS = 1000


@dataclass(frozen=True)
class Options:
    """What ``run_webhooks`` needs besides the broker (``KAIZEN_WEBHOOK_*`` in production)."""

    policy: Policy
    timeout: float = 10.0
    heartbeat_seconds: float = 5.0
    group_id: str | None = None
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: _Runner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.runner.commit(revoked)
        self.runner.dispatcher.revoke({tp.partition for tp in revoked})
        self.runner.paused -= set(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


class _Runner:
    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        group: str,
        dispatcher: Dispatcher,
        feed: SubscriptionFeed,
        events: EventLog,
    ) -> None:
        self.consumer = consumer
        self.group = group
        self.dispatcher = dispatcher
        self.feed = feed
        self.events = events
        self.committed: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()

    async def step(self) -> None:
        batches = await self.consumer.getmany(timeout_ms=200, max_records=500)
        if any(batches.values()):
            await self.feed.sync(self.consumer)
        for records in batches.values():
            for record in records:
                await self._dispatch(record)
        self._backpressure()
        await self.commit(self.consumer.assignment())
        if self.dispatcher.failure is not None:
            raise self.dispatcher.failure

    async def _dispatch(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            envelope = codec.decode(record.value)
        except codec.PoisonRecord as exc:
            await dead_letter(self.events, record, exc.reason, self.group)
            envelope = None
        job_event = envelope if envelope is not None and domain.is_job_event(envelope) else None
        self.dispatcher.dispatch(record.partition, record.offset, job_event)

    def _backpressure(self) -> None:
        for tp in self.consumer.assignment():
            open_records = self.dispatcher.ledger.pending(tp.partition)
            if tp not in self.paused and open_records >= MAX_OPEN_RECORDS:
                self.consumer.pause(tp)
                self.paused.add(tp)
            elif tp in self.paused and open_records < MAX_OPEN_RECORDS // 2:
                self.consumer.resume(tp)
                self.paused.discard(tp)

    async def commit(self, partitions: set[TopicPartition]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for tp in partitions:
            offset = self.dispatcher.ledger.committable(tp.partition)
            if offset is not None and self.committed.get(tp) != offset:
                offsets[tp] = offset
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance in progress: the next step commits again
            log.warning("committing webhook offsets failed: %r", exc)
            return
        self.committed.update(offsets)


async def run_webhooks(
    bootstrap: str,
    topics: Topics,
    fernet: Fernet,
    stop: asyncio.Event,
    options: Options,
    *,
    receiver: Receiver | None = None,
) -> None:
    """Deliver job events to the subscriptions until ``stop`` is set.

    Raises :class:`shared.loops.LoopFailed` when a background loop gave up, and a lane's
    error when a delivery could not be recorded.
    """
    subscriptions = Subscriptions(decrypt=lambda ciphertext: _decrypt(fernet, ciphertext))
    events = EventLog(bootstrap, topics, client_id=SERVICE_NAME)
    http: HttpReceiver | None = None
    if receiver is None:
        receiver = http = HttpReceiver(options.timeout)
    dispatcher = Dispatcher(subscriptions, receiver, AttemptLog(events, stop), options.policy)
    feed = SubscriptionFeed(bootstrap, topics.keys, subscriptions)
    loops = Loops(stop)
    spawn_heartbeat(loops, events, SERVICE_NAME, stop, options.heartbeat_seconds, instance_name(SERVICE_NAME))
    loops.spawn("subscriptions", lambda _health: feed.follow(stop))
    group = options.group_id or topics.group(GROUP)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=2_000,
        **client_options(),
    )
    runner = _Runner(consumer, group, dispatcher, feed, events)
    consumer.subscribe([topics.tasks], listener=_Rebalance(runner))
    metrics_server = metrics.serve(options.metrics_port, options.metrics_host)
    try:
        await consumer.start()
        try:
            while not stop.is_set():
                await runner.step()
        finally:
            await dispatcher.close()  # unsettled records stay uncommitted: redelivered later
            with contextlib.suppress(KafkaError):
                await runner.commit(consumer.assignment())
            await consumer.stop()
    finally:
        metrics.stop(metrics_server)
        await loops.close()
        if http is not None:
            await http.close()
        await events.stop()
    loops.raise_if_failed()


def _decrypt(fernet: Fernet, ciphertext: str) -> str | None:
    try:
        return decrypt_token(fernet, ciphertext)
    except TokenUnreadable:
        log.error("a webhook subscription's secret does not decrypt with this KAIZEN_SECRET_KEY")
        return None
