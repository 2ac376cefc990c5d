"""Is Kafka reachable, and where does each replayable partition end? For ``/health``.

One metadata request (``describe_topics``) proves the broker answers and names the
partitions; ``end_offsets`` then gives the log ends the projector's lag is measured
against. Clients are kept between probes and rebuilt after a failure (a client whose
bootstrap failed stays unusable).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.events.topics import Topics

log = logging.getLogger(__name__)


class KafkaUnreachable(RuntimeError):
    """The probe got no answer in time."""


class LogProbe:
    """Cheap, bounded questions to the broker; never hangs longer than ``timeout``."""

    def __init__(self, bootstrap: str, topics: Topics, timeout: float = 2.0) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._timeout = timeout
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def end_offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to be written per replayable partition; raises :class:`KafkaUnreachable`."""
        try:
            async with asyncio.timeout(self._timeout):
                admin, consumer = await self._clients()
                described = await admin.describe_topics(list(self._topics.replayable))
                partitions = [
                    TopicPartition(t["topic"], p["partition"])
                    for t in described
                    for p in t.get("partitions", [])
                ]
                ends = await consumer.end_offsets(partitions) if partitions else {}
        except (KafkaError, OSError, TimeoutError) as exc:
            await self.close()
            raise KafkaUnreachable(f"Kafka at {self._bootstrap} did not answer: {exc!r}") from exc
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            ms = int(self._timeout * 1000)
            admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=ms)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap, enable_auto_commit=False, request_timeout_ms=ms
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
