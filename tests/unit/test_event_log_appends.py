"""Concurrent appends share the producer without queueing behind each other, and each
answers only once its own records are acknowledged (DESIGN §4 rule 1).

The producer is a stand-in that records sends and acknowledges when the test says so;
the real broker path is covered by the integration tests and ``bench/append_path.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from shared.events.envelope import Envelope
from shared.events.keys import ApiKeyRevoked
from shared.events.topics import Topics
from shared.kafka.producer import EventLog


@dataclass(frozen=True)
class Acked:
    """What the producer's future resolves to (aiokafka's ``RecordMetadata``, the part used)."""

    topic: str
    partition: int
    offset: int


class HeldProducer:
    """Enqueues every send at once; acknowledges only on :meth:`ack_all`."""

    def __init__(self) -> None:
        self.pending: list[tuple[asyncio.Future[Acked], str]] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: object = None
    ) -> asyncio.Future[Acked]:
        future: asyncio.Future[Acked] = asyncio.get_running_loop().create_future()
        self.pending.append((future, topic))
        return future

    def ack_all(self) -> None:
        for offset, (future, topic) in enumerate(self.pending):
            future.set_result(Acked(topic, 0, offset))


def revoke() -> Envelope:
    return Envelope.wrap(ApiKeyRevoked(key_id=uuid.uuid4()), source="api")


async def test_concurrent_appends_are_in_flight_together_and_answer_only_once_acknowledged() -> None:
    log = EventLog("unused:9092", Topics("t"), client_id="test")
    producer = HeldProducer()
    log._producer = producer  # type: ignore[assignment]  # connected already, to this stand-in
    appends = [asyncio.create_task(log.append_all([revoke(), revoke()])) for _ in range(8)]
    await asyncio.sleep(0.05)
    # Every request's records reached the producer while none was acknowledged ...
    assert len(producer.pending) == 16
    # ... and no request answered before its acknowledgement.
    assert not any(a.done() for a in appends)
    producer.ack_all()
    positions = await asyncio.gather(*appends)
    assert sorted(p.offset for request in positions for p in request) == list(range(16))
    # A request's events keep their order.
    assert all(request[0].offset < request[1].offset for request in positions)
