"""Keeps the in-memory :class:`KeyRing` current by reading the keys topic.

Each API process reads the whole keys topic (one partition, a few events per key) from
its start, without a consumer group, and then follows it. It serves authentication only
once it has caught up with the end the log had when it connected; until then, and
whenever the feed has stopped, keys are checked in the read model as before.

A key revoked through another API process is refused here once this feed has read the
revocation: the feed's lag, normally a few milliseconds (a fetch returns as soon as a
record arrives). A write that appends a key event waits until this process's feed has
read it (:meth:`KeyFeed.reached`), so the request that revokes a key returns only when
this process refuses the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from services.api.adapters import NotYetVisible
from services.api.keyring import KeyRing
from shared.events import codec
from shared.kafka.producer import Position
from shared.kafka.security import client_options

log = logging.getLogger(__name__)
RETRY_SECONDS = 1.0


class KeyFeed:
    """Folds the keys topic into ``ring``; wakes writers waiting for their own key events."""

    def __init__(self, bootstrap: str, topic: str, ring: KeyRing | None = None) -> None:
        self.ring = ring if ring is not None else KeyRing()
        self.topic = topic
        self._bootstrap = bootstrap
        self._partition = TopicPartition(topic, 0)
        self._next_offset = 0
        self._caught_up = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # ties in the heap never compare futures
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def serving(self) -> bool:
        """Whether the ring may answer: caught up once, and still following the log."""
        return self._caught_up and self.running

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="api-key-feed")
        self._task.add_done_callback(_log_crash)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def reached(self, positions: list[Position], timeout: float) -> None:  # noqa: ASYNC109
        """Return once the feed has folded every keys-topic position (others are ignored);
        raise :class:`NotYetVisible` (a 504: the write is durable) after ``timeout``."""
        offsets = [p.offset for p in positions if p.topic == self.topic]
        # A stopped feed serves nothing: the read model, which the write waited for, decides.
        if not offsets or max(offsets) < self._next_offset or not self.running:
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (max(offsets), next(self._order), future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise NotYetVisible("this API process did not read the key event in time") from exc

    async def _follow(self) -> None:
        """Read the topic for ever, reconnecting after a failure from where it stopped."""
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                enable_auto_commit=False,
                isolation_level="read_committed",
                **client_options(),
            )
            try:
                await consumer.start()
                await self._read(consumer)
            except (KafkaError, OSError) as exc:
                log.warning("reading the keys topic failed (keys are checked in the read model): %r", exc)
            finally:
                with contextlib.suppress(KafkaError, OSError):
                    await consumer.stop()
            await asyncio.sleep(RETRY_SECONDS)

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        consumer.assign([self._partition])
        consumer.seek(self._partition, self._next_offset)
        end = (await consumer.end_offsets([self._partition]))[self._partition]
        while True:
            if self._next_offset >= end and not self._caught_up:
                self._caught_up = True
                log.info("serving API keys from memory: %d keys folded", len(self.ring))
            batches = await consumer.getmany(self._partition, timeout_ms=1000)
            for record in batches.get(self._partition, []):
                self._fold(record.offset, record.value)
            # The position, not the last record, counts: it also steps over transaction markers.
            self._advance(await consumer.position(self._partition))

    def _fold(self, offset: int, value: bytes | None) -> None:
        try:
            self.ring.apply(codec.decode(value))
        except codec.PoisonRecord as exc:
            # The projector dead-letters it; for keys it is as if it were not there.
            log.warning("skipping undecodable keys record at offset %d: %s", offset, exc.reason)

    def _advance(self, next_offset: int) -> None:
        self._next_offset = max(self._next_offset, next_offset)
        while self._waiters and self._waiters[0][0] < self._next_offset:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the key feed stopped; keys are checked in the read model", exc_info=task.exception())
