"""Applying a batch of deliveries to the read model in one transaction."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projector.handlers import HANDLERS, Ctx
from shared.kafka.consumer import Delivery, dead_letter
from shared.kafka.offsets import TableOffsets
from shared.kafka.producer import EventLog
from shared.readmodel.db import refused_data
from shared.readmodel.tables import projector_offsets

log = logging.getLogger(__name__)


class Projection:
    """Folds deliveries into the read model; offsets are written with the rows."""

    def __init__(self, engine: AsyncEngine, events: EventLog | None, group: str) -> None:
        self.engine = engine
        self.offsets = TableOffsets(engine, projector_offsets)
        self.events = events
        self.group = group
        self.applied = 0

    async def apply(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        async with self.engine.begin() as conn:
            for delivery in deliveries:
                if delivery.envelope is not None:
                    ctx = Ctx(conn, delivery.envelope, delivery.topic, delivery.partition, delivery.offset)
                    handler = HANDLERS[type(delivery.envelope.data)]
                    try:
                        async with conn.begin_nested():
                            await handler(ctx, delivery.envelope.data)
                    except DBAPIError as exc:
                        # Only the data's fault (SQLSTATE 22/23) is poison: retrying it would
                        # fail forever. Anything else (database down, a bug) stops the process.
                        reason = refused_data(exc)
                        if reason is None:
                            raise
                        await self._dead_letter(delivery, f"projection failed: {reason}")
                self.applied += 1
            last = deliveries[-1]
            await self.offsets.save(conn, last.topic, last.partition, last.offset + 1)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        if self.events is None:
            # A rebuild: the live projector dead-lettered this record already.
            log.warning("skipping %s[%d]@%d: %s", delivery.topic, delivery.partition, delivery.offset, reason)
            return
        await dead_letter(self.events, delivery.record, reason, self.group)
