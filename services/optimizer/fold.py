"""Applying a batch of task events to the optimizer's state, and emitting its decisions."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.optimizer import domain
from services.optimizer.adapters import StateStore, examples
from services.optimizer.handlers import HANDLERS, Ctx
from shared import logcontext, tracing
from shared.events.base import Event, derive_id
from shared.events.envelope import Envelope
from shared.events.jobs import JobRequested
from shared.kafka.consumer import Delivery
from shared.kafka.producer import EventLog

log = logging.getLogger(__name__)

SOURCE = "optimizer"


class Trigger:
    """Folds deliveries into the state store and appends the events it decides."""

    def __init__(self, store: StateStore, events: EventLog) -> None:
        self.store = store
        self.events = events
        #: Jobs whose cancellation was folded in the last batch, for the runner.
        self.cancelled: set[uuid.UUID] = set()

    async def apply(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        async with self.store.engine.begin() as conn:
            emitted: list[Envelope] = []
            for d in deliveries:
                env = d.envelope
                if env is None or env.task_id is None:
                    continue
                event = await _first_sightings(conn, env.task_id, env.data, d.offset)
                if event is None:
                    continue  # a copy of feedback counted at its first offset
                state, settings = await StateStore.task(conn, env.task_id)
                ctx = Ctx(
                    conn,
                    env,
                    d.partition,
                    d.offset,
                    domain.evolve(state, event, d.offset),
                    settings,
                    self.cancelled,
                )
                handler = HANDLERS.get(type(event))
                with logcontext.of_envelope(env), tracing.handling(d):
                    decided = await handler(ctx, event) if handler else []
                    for job in (e for e in decided if isinstance(e, JobRequested)):
                        log.info(
                            "job %s requested (%s)",
                            job.job_id,
                            job.triggered_by,
                            extra={"job_id": job.job_id},
                        )
                        # The job's trace continues the event that requested it (docs/operations.md).
                        tracing.remember(job.job_id)
                    # Decisions are appended after the batch, each in the trace of its cause.
                    traceparent = tracing.current_traceparent()
                emitted += [
                    Envelope.wrap(
                        e,
                        source=SOURCE,
                        causation=env,
                        id=derive_id("decision", env.id, i),
                        traceparent=traceparent,
                    )
                    for i, e in enumerate(decided)
                ]
                await StateStore.save_task(conn, ctx.state, ctx.settings, d.partition)
            if emitted:
                # Acknowledged before the state commits: a crash in between re-derives
                # the same events (same ids) on redelivery; consumers dedupe them.
                await self.events.append_all(emitted)
            last = deliveries[-1]
            await self.store.save(conn, last.topic, last.partition, last.offset + 1)


async def _first_sightings(
    conn: AsyncConnection, task_id: uuid.UUID, event: Event, offset: int
) -> Event | None:
    """``event`` without the feedback that an earlier event of the task already recorded."""
    ids = domain.recorded_ids(event)
    if not ids:
        return event
    query = select(examples.c.id, examples.c.log_offset).where(
        examples.c.task_id == str(task_id), examples.c.id.in_([str(i) for i in ids])
    )
    first = {uuid.UUID(row.id): row.log_offset for row in await conn.execute(query)}
    return domain.first_sightings(event, first, offset)
