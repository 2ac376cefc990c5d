"""Appending events to the log: idempotent, ``acks=all``, answered only once acknowledged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from shared import tracing
from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.topics import Topics
from shared.kafka.security import KafkaSecurity, client_options

log = logging.getLogger(__name__)

#: The largest record we append. Kafka's defaults (producer ``max.request.size`` 1 MiB,
#: broker ``message.max.bytes`` 1 MiB + 12) leave room for the batch and record headers.
MAX_EVENT_BYTES = 1_000_000
#: How many bytes of records aiokafka gathers into one batch per partition. Its default,
#: 16 KiB, made a 500-item feedback batch (~300 KB, one partition) wait for some twenty
#: produce round trips one after the other: an idempotent producer keeps one request in flight per
#: partition, and ``send`` waits for a full batch to be drained before it opens the next.
#: At :data:`MAX_EVENT_BYTES` a request's events leave in one produce request; a batch of
#: that size still fits the broker's ``message.max.bytes`` (1 MiB + 12).
MAX_BATCH_BYTES = MAX_EVENT_BYTES


class LogUnavailable(RuntimeError):
    """Kafka did not acknowledge the append in time; nothing may be reported as written."""


class EventTooLarge(ValueError):
    """An event encodes to more than :data:`MAX_EVENT_BYTES`; nothing of its batch was sent."""

    def __init__(self, event_type: str, size: int) -> None:
        super().__init__(f"{event_type} encodes to {size} bytes; at most {MAX_EVENT_BYTES} fit in a record")
        self.event_type, self.size = event_type, size


class KeyHashCache:
    """aiokafka's default partitioner with each key's murmur2 hash remembered.

    The hash is pure Python, and a feedback batch's hundreds of records share one key
    (their task's id): hashing it once per batch instead of once per record takes the
    hash out of the per-item cost. Every choice is the default partitioner's.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            chosen: int = DefaultPartitioner()(key, all_partitions, available)
            return chosen
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._size:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


@dataclass(frozen=True)
class Position:
    """Where an acknowledged event sits in the log."""

    topic: str
    partition: int
    offset: int


class EventLog:
    """An idempotent producer (``acks=all``) that appends envelopes to their topics.

    It connects lazily and reconnects after a failure, so a process started while the
    broker is down serves 503s instead of dying, and recovers by itself.

    Concurrent appends are never serialized: the hot path takes no lock, and ``send``
    only adds a record to aiokafka's accumulator. Its sender keeps one produce request in
    flight per broker and ships everything that accumulated meanwhile in the next one,
    so concurrent requests share produce requests while each still waits for its own
    records' acknowledgement.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        *,
        client_id: str,
        timeout: float = 10.0,
        security: KafkaSecurity | None = None,
    ) -> None:
        """``security``: how to connect; ``None`` means this process's ``KAIZEN_KAFKA_*`` settings."""
        self.topics = topics
        self._bootstrap = bootstrap
        self._security = security
        self._client_id = client_id
        self._timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _ensure_started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    client_id=self._client_id,
                    enable_idempotence=True,
                    acks="all",
                    request_timeout_ms=int(self._timeout * 1000),
                    # Batches form while a request is in flight; lingering would only
                    # delay a lone write.
                    linger_ms=0,
                    max_batch_size=MAX_BATCH_BYTES,
                    partitioner=KeyHashCache(),
                    **client_options(self._security),
                )
                try:
                    await asyncio.wait_for(producer.start(), self._timeout)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await producer.stop()
                    raise LogUnavailable(f"Kafka at {self._bootstrap} is unreachable: {exc!r}") from exc
                self._producer = producer
        return self._producer

    async def start(self) -> None:
        await self._ensure_started()

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def append(self, envelope: Envelope) -> Position:
        """Append one event; returns its position once every in-sync replica has it."""
        return (await self.append_all([envelope]))[0]

    async def append_all(self, envelopes: list[Envelope]) -> list[Position]:
        """Append several events (each to its own topic/partition) and wait for all acks.

        Not atomic: a failure (``LogUnavailable``) may leave any prefix of a partition's
        events in the log, and a timed-out batch may even be written. Callers re-append
        the *same* envelopes (same ids) until acknowledged; every consumer dedupes by id.
        Sizes are checked first, so an oversized event sends nothing of its batch.
        """
        targets = [(self.topics.for_envelope(e), e) for e in envelopes]
        if not tracing.enabled():
            return await self._send_all([(topic, e, []) for topic, e in targets])
        from shared.tracing import messaging  # only with tracing on: it imports OpenTelemetry

        # Each record's send span: its context goes into a header and the envelope.
        with messaging.sending(targets) as traced:
            return await self._send_all(traced)

    async def _send_all(
        self, targets: Sequence[tuple[str, Envelope, list[tuple[str, bytes]]]]
    ) -> list[Position]:
        """Append ``(topic, envelope, trace headers)`` records; see :meth:`append_all`."""
        records = [(topic, codec.encode(e), e, traced) for topic, e, traced in targets]
        for _topic, value, envelope, _traced in records:
            if len(value) > MAX_EVENT_BYTES:
                raise EventTooLarge(envelope.type, len(value))
        producer = await self._ensure_started()
        try:
            # Enqueued one after the other so a request's events keep their order in a
            # partition; the acknowledgements are awaited together.
            futures = [
                await producer.send(topic, value, key=e.key, headers=codec.headers() + traced)
                for topic, value, e, traced in records
            ]
            metadata = await asyncio.wait_for(asyncio.gather(*futures), self._timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("append failed: %r", exc)
            await self._reset()
            raise LogUnavailable(f"Kafka did not acknowledge the write: {exc!r}") from exc
        return [Position(m.topic, m.partition, m.offset) for m in metadata]

    async def send_raw(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        """Send bytes as they are (the dead-letter path)."""
        producer = await self._ensure_started()
        await producer.send_and_wait(topic, value, key=key, headers=headers)

    async def _reset(self) -> None:
        # A producer whose batches timed out keeps failing; a fresh one reconnects cleanly.
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except (KafkaError, OSError, TimeoutError):
                log.debug("producer stop after failure raised", exc_info=True)
