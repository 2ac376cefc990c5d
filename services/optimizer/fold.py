"""Applying a batch of task events to the optimizer's state, and emitting its decisions."""

from __future__ import annotations

import uuid

from services.optimizer import domain
from services.optimizer.adapters import StateStore
from services.optimizer.handlers import HANDLERS, Ctx
from shared.events.base import derive_id
from shared.events.envelope import Envelope
from shared.kafka.consumer import Delivery
from shared.kafka.producer import EventLog

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
                state, settings = await StateStore.task(conn, env.task_id)
                ctx = Ctx(
                    conn,
                    env,
                    d.partition,
                    d.offset,
                    domain.evolve(state, env.data, d.offset),
                    settings,
                    self.cancelled,
                )
                handler = HANDLERS.get(type(env.data))
                decided = await handler(ctx, env.data) if handler else []
                emitted += [
                    Envelope.wrap(e, source=SOURCE, causation=env, id=derive_id("decision", env.id, i))
                    for i, e in enumerate(decided)
                ]
                await StateStore.save_task(conn, ctx.state, ctx.settings, d.partition)
            if emitted:
                # Acknowledged before the state commits: a crash in between re-derives
                # the same events (same ids) on redelivery; consumers dedupe them.
                await self.events.append_all(emitted)
            last = deliveries[-1]
            await self.store.save(conn, last.topic, last.partition, last.offset + 1)
