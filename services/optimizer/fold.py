"""Applying a batch of task events to the optimizer's state, and emitting its decisions.

The per-record work of the shared batch-fold loop (``shared.kafka.batch_fold``): the loop
runs it in one transaction with the next offset, bisects a batch whose data the store
refuses (the poison record is dead-lettered, the rest folded) and appends the decisions of
the kept records once, before the commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.optimizer import GROUP, SERVICE_NAME, domain
from services.optimizer.adapters import StateStore, examples
from services.optimizer.handlers import HANDLERS, Ctx
from shared import logcontext, tracing
from shared.events.base import Event, derive_id
from shared.events.envelope import Envelope
from shared.events.jobs import JobRequested
from shared.kafka.batch_fold import BatchFold
from shared.kafka.consumer import Delivery
from shared.kafka.fold_transactions import OnAsyncConnection
from shared.kafka.producer import EventLog

log = logging.getLogger(__name__)

SOURCE = "optimizer"


@dataclass(frozen=True)
class Cancelled:
    """A job whose cancellation was folded: an effect for the runner, kept only if its record is."""

    job_id: uuid.UUID


@dataclass(frozen=True)
class Requested:
    """A job the fold requested: logged, and its trace remembered, only if its record is kept."""

    job: JobRequested
    envelope: Envelope  # the decision, for the log line's context
    span: object | None  # ``tracing.capture()`` of the handling span


#: What a fold step hands back to the loop: decisions to append, cancellations to pass on,
#: requested jobs to announce. A part that bisection rolls back hands back nothing.
Effect = Envelope | Cancelled | Requested


class Trigger:
    """Folds deliveries into the state store and appends the events it decides.

    ``group``: the consumer group, named in the dead letters' ``kaizen.group`` header
    (by default the deployment's optimizer group).
    """

    def __init__(self, store: StateStore, events: EventLog, group: str | None = None) -> None:
        self.store = store
        self.events = events
        #: Jobs whose cancellation was folded since the runner last took them.
        self.cancelled: set[uuid.UUID] = set()
        self.loop: BatchFold[Effect] = BatchFold(
            OnAsyncConnection(store.engine, self._fold, store),
            consumer=SERVICE_NAME,
            what="trigger fold",
            group=group if group is not None else events.topics.group(GROUP),
            dead_letters=events,
            emit=self._emit,
        )

    async def apply(self, deliveries: list[Delivery]) -> None:
        await self.loop.apply(deliveries)

    async def _emit(self, effects: list[Effect]) -> None:
        decided = [e for e in effects if isinstance(e, Envelope)]
        if decided:
            # Acknowledged before the state commits: a crash in between re-derives
            # the same events (same ids) on redelivery; consumers dedupe them.
            await self.events.append_all(decided)
        self.cancelled |= {e.job_id for e in effects if isinstance(e, Cancelled)}
        for requested in (e for e in effects if isinstance(e, Requested)):
            job = requested.job
            with logcontext.of_envelope(requested.envelope):
                log.info("job %s requested (%s)", job.job_id, job.triggered_by, extra={"job_id": job.job_id})
            # The job's trace continues the event that requested it (docs/operations.md).
            tracing.remember(job.job_id, requested.span)

    async def _fold(self, conn: AsyncConnection, deliveries: Sequence[Delivery]) -> list[Effect]:
        effects: list[Effect] = []
        for d in deliveries:
            env = d.envelope
            if env is None or env.task_id is None:
                continue
            event = await _first_sightings(conn, env.task_id, env.data, d.offset)
            if event is None:
                continue  # a copy of feedback counted at its first offset
            state, settings = await StateStore.task(conn, env.task_id)
            cancelled: set[uuid.UUID] = set()
            ctx = Ctx(
                conn, env, d.partition, d.offset, domain.evolve(state, event, d.offset), settings, cancelled
            )
            handler = HANDLERS.get(type(event))
            with logcontext.of_envelope(env), tracing.handling(d):
                decided = await handler(ctx, event) if handler else []
                # Decisions are appended after the batch, each in the trace of its cause.
                traceparent = tracing.current_traceparent()
                span = tracing.capture()
            wrapped = [
                Envelope.wrap(
                    e,
                    source=SOURCE,
                    causation=env,
                    id=derive_id("decision", env.id, i),
                    traceparent=traceparent,
                )
                for i, e in enumerate(decided)
            ]
            effects += wrapped
            effects += [Requested(w.data, w, span) for w in wrapped if isinstance(w.data, JobRequested)]
            effects += [Cancelled(job_id) for job_id in sorted(cancelled)]
            await StateStore.save_task(conn, ctx.state, ctx.settings, d.partition)
        return effects


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
