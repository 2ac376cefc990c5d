"""Is Kafka reachable, and where does each replayable partition end? For ``/health``.

One metadata request (``describe_topics``) proves the broker answers and names the
partitions; ``end_offsets`` then gives the log ends the projector's lag is measured
against. Clients are kept between probes and rebuilt after a failure (a client whose
bootstrap failed stays unusable).

Every probe's answer is kept in :class:`BrokerState`, and :func:`watch_broker` probes
every second in the background, so the API knows within seconds that the broker is
gone: writes then answer 503 at once instead of waiting for the producer's timeout,
and ``/readyz`` answers without a round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.events.topics import Topics
from shared.kafka.security import client_options
from shared.loops import LoopHealth

log = logging.getLogger(__name__)


#: Seconds between background probes (a refused write suggests a retry after two of them).
WATCH_SECONDS = 1.0
#: Probes that must fail in a row before writes are refused without trying: one slow
#: answer from a busy broker must not turn writes away.
FAILURES_TO_DOWN = 2


class KafkaUnreachable(RuntimeError):
    """The probe got no answer in time."""


class BrokerState:
    """What this process last learned about the broker, from probes and from writes."""

    def __init__(self) -> None:
        self.reachable: bool | None = None  # None: not asked yet
        self.failures = 0
        self.error: str | None = None

    @property
    def known_down(self) -> bool:
        """The broker failed to answer repeatedly (or a write timed out) and has not answered since."""
        return self.reachable is False

    def answered(self) -> None:
        if self.reachable is False:
            log.info("Kafka answers again; writes are accepted")
        self.reachable, self.failures, self.error = True, 0, None

    def failed(self, error: str, *, decisive: bool = False) -> None:
        """A probe (``decisive=False``) or a write (``decisive=True``) got no answer."""
        self.failures += 1
        self.error = error
        if (decisive or self.failures >= FAILURES_TO_DOWN) and self.reachable is not False:
            self.reachable = False
            log.warning("Kafka is unreachable; writes answer 503 until it answers: %s", error)


class LogProbe:
    """Cheap, bounded questions to the broker; never hangs longer than ``timeout``."""

    def __init__(self, bootstrap: str, topics: Topics, timeout: float = 2.0) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._timeout = timeout
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        # One probe at a time: concurrent probes would build (and close) each other's clients.
        self._lock = asyncio.Lock()
        self.state = BrokerState()

    async def end_offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to be written per replayable partition; raises :class:`KafkaUnreachable`."""
        async with self._lock:
            try:
                ends = await self._ask()
            except (KafkaError, OSError, TimeoutError) as exc:
                await self.close()
                error = f"Kafka at {self._bootstrap} did not answer: {exc!r}"
                self.state.failed(error)
                raise KafkaUnreachable(error) from exc
        self.state.answered()
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def _ask(self) -> dict[TopicPartition, int]:
        async with asyncio.timeout(self._timeout):
            admin, consumer = await self._clients()
            described = await admin.describe_topics(list(self._topics.replayable))
            partitions = [
                TopicPartition(t["topic"], p["partition"]) for t in described for p in t.get("partitions", [])
            ]
            return await consumer.end_offsets(partitions) if partitions else {}

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            ms = int(self._timeout * 1000)
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._bootstrap, request_timeout_ms=ms, **client_options()
            )
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                enable_auto_commit=False,
                request_timeout_ms=ms,
                **client_options(),
            )
            self._admin, self._consumer = admin, consumer
            await admin.start()
            await consumer.start()
        return self._admin, self._consumer

    async def close(self) -> None:
        admin, consumer, self._admin, self._consumer = self._admin, self._consumer, None, None
        for client in (admin, consumer):
            if client is None:
                continue
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                # Stopping a client whose broker vanished can wait on its connections.
                stop = client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop()
                await asyncio.wait_for(stop, self._timeout)


async def watch_broker(probe: LogProbe, stop: asyncio.Event, health: LoopHealth) -> None:
    """Probe every :data:`WATCH_SECONDS` until ``stop``; the answers land in ``probe.state``.

    Run under :class:`shared.loops.Loops`. An unreachable broker is an answer, not a failure.
    """
    while not stop.is_set():
        with health.iteration(), contextlib.suppress(KafkaUnreachable):
            await probe.end_offsets()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WATCH_SECONDS)
