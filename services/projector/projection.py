"""Applying a batch of deliveries to the read model: fold in memory, write once, with the offsets.

The per-record work of the shared batch-fold loop (``shared.kafka.batch_fold``): load the
rows a batch reads, fold every event into them (``handlers.evolve``), and write each
table's changes with one statement. The loop runs it in one transaction with the next
offsets; when the database refuses the data (SQLSTATE 22/23, or a value
``services.projector.view`` rejects), it bisects the batch in savepoints, dead-letters
the poison records and applies the rest; any other error stops the process.

The fold is synchronous and a batch is one call (``InWorkerThread`` over
``Transactions.run``): on a SQLite file that is one trip to a worker thread for the whole
batch, where aiosqlite made one per statement, and records that arrived meanwhile waited
for each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Never

from aiokafka import TopicPartition
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projector import SERVICE_NAME, adapters
from services.projector.handlers import Fact, evolve, wanted
from services.projector.view import RefusedValue
from shared import metrics
from shared.kafka.batch_fold import BatchFold
from shared.kafka.consumer import Delivery
from shared.kafka.fold_transactions import InWorkerThread
from shared.kafka.offsets import TableOffsets
from shared.kafka.producer import EventLog
from shared.readmodel.db import refused_data
from shared.readmodel.tables import projector_offsets
from shared.readmodel.transactions import Transactions

log = logging.getLogger(__name__)


class Projection:
    """Folds deliveries into the read model; offsets are written with the rows.

    ``events`` is where poison records go; ``None`` for a rebuild (``kaizen replay``), whose
    log's poison the live projector dead-lettered already.
    """

    def __init__(self, engine: AsyncEngine, events: EventLog | None, group: str) -> None:
        self.engine = engine
        self.transactions = Transactions(engine)
        self.offsets = TableOffsets(engine, projector_offsets)
        self.events = events
        self.group = group
        self.loop: BatchFold[Never] = BatchFold(
            InWorkerThread(self.transactions, fold, self.offsets),
            consumer=SERVICE_NAME,
            what="projection",
            group=group,
            dead_letters=events,
            refused=refusal,
        )
        self.applied = 0
        #: The consumer's last-fetched high watermark of a partition (for the lag gauge); None: unknown.
        self.highwater: Callable[[TopicPartition], int | None] = lambda _tp: None

    async def apply(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        await self.loop.apply(deliveries)
        self.applied += len(deliveries)
        self._count(deliveries)

    async def close(self) -> None:
        """Release the transactions' worker thread and its connections (not ``engine``)."""
        await self.transactions.dispose()

    def _count(self, deliveries: Sequence[Delivery]) -> None:
        metrics.PROJECTOR_BATCHES.inc()
        metrics.PROJECTOR_RECORDS.inc(len(deliveries))
        following: dict[TopicPartition, int] = {}
        for d in deliveries:
            following[d.tp] = max(following.get(d.tp, 0), d.offset + 1)
        for tp, next_offset in following.items():
            highwater = self.highwater(tp)
            if highwater is not None:
                lag = max(0, highwater - next_offset)
                metrics.PROJECTOR_LAG.labels(tp.topic, str(tp.partition)).set(lag)


def fold(conn: Connection, deliveries: Sequence[Delivery]) -> None:
    """Load what ``deliveries`` read, fold them in log order, and write the changes."""
    facts = [Fact(d.envelope, d.topic, d.partition, d.offset) for d in deliveries if d.envelope is not None]
    if not facts:
        return
    view = adapters.load(conn, wanted(facts))
    for fact in facts:
        evolve(view, fact)
    adapters.write(conn, view.changes())


def refusal(exc: BaseException) -> str | None:
    """Why the data was refused (the record is poison), or ``None`` when the fault lies elsewhere."""
    if isinstance(exc, RefusedValue):
        return exc.reason
    return refused_data(exc)
