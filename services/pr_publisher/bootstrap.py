"""The one place the PR publisher's real connections are built."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Never

from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncConnection

from services.pr_publisher import GROUP, SERVICE_NAME
from services.pr_publisher.git_hosts import DEFAULT_ALLOWLIST
from services.pr_publisher.handlers import HANDLERS, Ctx
from services.pr_publisher.publisher import Publisher
from services.pr_publisher.state import PublisherState
from shared import metrics
from shared.events.topics import Topics
from shared.git_policy import Origin
from shared.kafka.batch_fold import BatchFold
from shared.kafka.consumer import Delivery, EventConsumer, act_when_caught_up
from shared.kafka.fold_transactions import OnAsyncConnection
from shared.kafka.offsets import local_state_engine
from shared.kafka.producer import EventLog
from shared.loops import Loops
from shared.service import instance_name, spawn_heartbeat

log = logging.getLogger(__name__)


class Fold:
    """Folds deliveries into the publisher's state (the handlers), through the shared batch-fold loop.

    A record whose data the state refuses goes to the dead-letter topic of ``events``
    (``group`` in its ``kaizen.group`` header) and the rest of its batch is folded.
    """

    def __init__(self, state: PublisherState, events: EventLog, group: str) -> None:
        self.state = state
        self.loop: BatchFold[Never] = BatchFold(
            OnAsyncConnection(state.engine, _fold, state),
            consumer=SERVICE_NAME,
            what="publisher fold",
            group=group,
            dead_letters=events,
        )

    async def apply(self, deliveries: list[Delivery]) -> None:
        await self.loop.apply(deliveries)


async def _fold(conn: AsyncConnection, deliveries: Sequence[Delivery]) -> list[Never]:
    for d in deliveries:
        handler = HANDLERS.get(type(d.envelope.data)) if d.envelope else None
        if handler is not None and d.envelope is not None:
            await handler(Ctx(conn, d.envelope, d.partition), d.envelope.data)
    return []


async def run_publisher(
    bootstrap: str,
    topics: Topics,
    state_path: Path,
    fernet: Fernet,
    stop: asyncio.Event,
    *,
    heartbeat_seconds: float = 5.0,
    group_id: str | None = None,
    git_timeout: float = 10.0,
    git_hosts: tuple[Origin, ...] = DEFAULT_ALLOWLIST,
    metrics_port: int = 0,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Fold the task topic and open the PRs it asks for until ``stop`` is set; metrics on ``metrics_port``.

    Raises :class:`shared.loops.LoopFailed` when a background loop gave up.
    """
    group = group_id or topics.group(GROUP)
    engine = local_state_engine(state_path)
    state = PublisherState(engine)
    await state.create()
    events = EventLog(bootstrap, topics, client_id=SERVICE_NAME)
    publisher = Publisher(state, events, fernet, timeout=git_timeout, git_hosts=git_hosts)
    loops = Loops(stop)
    instance = instance_name(SERVICE_NAME)
    consumer = EventConsumer(
        bootstrap=bootstrap,
        topics=[topics.tasks],
        group_id=group,
        events=events,
        handler=loops.track("consume").around(Fold(state, events, group).apply),
        offsets=state,
    )
    spawn_heartbeat(loops, events, SERVICE_NAME, stop, heartbeat_seconds, instance)
    loops.spawn(
        "reconcile", lambda health: act_when_caught_up(consumer, stop, publisher.reconcile, 0.3, health)
    )
    metrics_server = metrics.serve(metrics_port, metrics_host)
    try:
        await consumer.run(stop)
    finally:
        metrics.stop(metrics_server)
        await loops.close()
        await events.stop()
        await engine.dispose()
    loops.raise_if_failed()
