"""Applying a batch of deliveries to the read model: fold in memory, write once, with the offsets.

The happy path is one transaction per batch: load the rows the batch reads, fold every
event into them (``handlers.evolve``), write each table's changes with one statement, and
store the next offset. When the database refuses the batch's data (SQLSTATE 22/23), the
batch is applied again by bisection, each part in a savepoint: a part the database
accepts is kept, a refused part is split, and a refused single record is dead-lettered.
The parts are folded in log order, each seeing the rows of the parts before it, so the
outcome is the one of applying the records one by one. Any other error stops the process.

The transaction's work is synchronous and runs in one call (``Transactions.run``): on a
SQLite file that is one trip to a worker thread for the whole batch, where aiosqlite made
one per statement, and records that arrived meanwhile waited for each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from aiokafka import TopicPartition
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projector import adapters
from services.projector.handlers import Fact, evolve, wanted
from services.projector.view import RefusedValue
from shared import metrics
from shared.kafka.batch_fold import bisect
from shared.kafka.consumer import Delivery, dead_letter
from shared.kafka.offsets import TableOffsets
from shared.kafka.producer import EventLog
from shared.readmodel.db import Held, Transactions, refused_data
from shared.readmodel.tables import projector_offsets

log = logging.getLogger(__name__)


class Projection:
    """Folds deliveries into the read model; offsets are written with the rows."""

    def __init__(self, engine: AsyncEngine, events: EventLog | None, group: str) -> None:
        self.engine = engine
        self.transactions = Transactions(engine)
        self.offsets = TableOffsets(engine, projector_offsets)
        self.events = events
        self.group = group
        self.applied = 0
        #: The consumer's last-fetched high watermark of a partition (for the lag gauge); None: unknown.
        self.highwater: Callable[[TopicPartition], int | None] = lambda _tp: None

    async def apply(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        decoded = [d for d in deliveries if d.envelope is not None]
        following = _following(deliveries)

        def batch(conn: Connection) -> None:
            fold(conn, decoded)
            self.offsets.store(conn, following)

        try:
            await self.transactions.run(batch)
        except Exception as exc:
            if refusal(exc) is None:
                raise
            log.warning("a batch of %d records was refused (%s); bisecting it", len(deliveries), refusal(exc))
            async with self.transactions.held() as held:
                await self._bisect(held, decoded)
                await held.run(lambda conn: self.offsets.store(conn, following))
        self.applied += len(deliveries)
        self._count(deliveries)

    async def close(self) -> None:
        """Release the transactions' worker thread and its connections (not ``engine``)."""
        await self.transactions.dispose()

    def _count(self, deliveries: Sequence[Delivery]) -> None:
        metrics.PROJECTOR_BATCHES.inc()
        metrics.PROJECTOR_RECORDS.inc(len(deliveries))
        undecodable = sum(1 for d in deliveries if d.envelope is None)
        if undecodable and self.events is not None:  # the consumer dead-lettered them
            metrics.PROJECTOR_DEAD_LETTERS.labels("undecodable").inc(undecodable)
        following: dict[TopicPartition, int] = {}
        for d in deliveries:
            following[d.tp] = max(following.get(d.tp, 0), d.offset + 1)
        for tp, next_offset in following.items():
            highwater = self.highwater(tp)
            if highwater is not None:
                lag = max(0, highwater - next_offset)
                metrics.PROJECTOR_LAG.labels(tp.topic, str(tp.partition)).set(lag)

    async def _bisect(self, held: Held, deliveries: Sequence[Delivery]) -> None:
        async def attempt(part: Sequence[Delivery]) -> None:
            await held.run(lambda conn: _in_savepoint(conn, part))

        async def poisoned(delivery: Delivery, reason: str) -> None:
            # Only the data's fault is poison: retrying it would fail forever.
            await self._dead_letter(delivery, f"projection failed: {reason}")

        await bisect(deliveries, attempt, refusal, poisoned)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        if self.events is None:
            # A rebuild: the live projector dead-lettered this record already.
            log.warning("skipping %s[%d]@%d: %s", delivery.topic, delivery.partition, delivery.offset, reason)
            return
        await dead_letter(self.events, delivery.record, reason, self.group)
        metrics.PROJECTOR_DEAD_LETTERS.labels("refused").inc()


def fold(conn: Connection, deliveries: Sequence[Delivery]) -> None:
    """Load what ``deliveries`` read, fold them in log order, and write the changes."""
    facts = [Fact(d.envelope, d.topic, d.partition, d.offset) for d in deliveries if d.envelope is not None]
    if not facts:
        return
    view = adapters.load(conn, wanted(facts))
    for fact in facts:
        evolve(view, fact)
    adapters.write(conn, view.changes())


def _in_savepoint(conn: Connection, deliveries: Sequence[Delivery]) -> None:
    """``fold`` that leaves nothing behind when it raises: a bisection's attempt."""
    with conn.begin_nested():
        fold(conn, deliveries)


def _following(deliveries: Sequence[Delivery]) -> dict[tuple[str, int], int]:
    """The next offset to read of each partition the batch holds."""
    following: dict[tuple[str, int], int] = {}
    for d in deliveries:
        following[(d.topic, d.partition)] = max(following.get((d.topic, d.partition), 0), d.offset + 1)
    return following


def refusal(exc: BaseException) -> str | None:
    """Why the data was refused (the record is poison), or ``None`` when the fault lies elsewhere."""
    if isinstance(exc, RefusedValue):
        return exc.reason
    return refused_data(exc)
