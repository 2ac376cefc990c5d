"""The one place the optimizer's real connections are built."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import TopicPartition

from services.optimizer import GROUP, SERVICE_NAME
from services.optimizer.adapters import StateStore
from services.optimizer.fold import Trigger
from services.optimizer.runner import JobRunner
from services.optimizer.specs import ModelDefaults, build_spec
from shared import metrics
from shared.events.topics import Topics
from shared.kafka.consumer import EventConsumer, act_when_caught_up
from shared.kafka.offsets import local_state_engine
from shared.kafka.producer import EventLog
from shared.loops import Loops
from shared.service import instance_name, spawn_heartbeat

log = logging.getLogger(__name__)


async def run_optimizer(
    bootstrap: str,
    topics: Topics,
    state_path: Path,
    defaults: ModelDefaults,
    stop: asyncio.Event,
    *,
    concurrency: int = 2,
    heartbeat_seconds: float = 5.0,
    group_id: str | None = None,
    metrics_port: int = 0,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Fold the task topic, trigger jobs and run them until ``stop`` is set; metrics on ``metrics_port``.

    Raises :class:`shared.loops.LoopFailed` when a background loop gave up.
    """
    group = group_id or topics.group(GROUP)
    engine = local_state_engine(state_path)
    store = StateStore(engine)
    await store.create()
    events = EventLog(bootstrap, topics, client_id=SERVICE_NAME)
    trigger = Trigger(store, events, group)
    instance = instance_name(SERVICE_NAME)
    runner = JobRunner(
        store,
        events,
        lambda job, settings, rows: build_spec(job, settings, rows, defaults),
        worker=instance,
        concurrency=concurrency,
        time_limit=defaults.time_limit_seconds,
    )

    async def assigned(partitions: set[TopicPartition]) -> None:
        # aiokafka rebalances eagerly: every rebalance revokes everything, then assigns.
        # A job keeps running when its partition comes back to us; only the jobs of
        # partitions now owned by another member are stopped (that member resumes them).
        await runner.release(runner.partitions() - {tp.partition for tp in partitions})

    loops = Loops(stop)
    consumer = EventConsumer(
        bootstrap=bootstrap,
        topics=[topics.tasks],
        group_id=group,
        events=events,
        handler=loops.track("consume").around(trigger.apply),
        offsets=store,
        on_assigned=assigned,
    )
    spawn_heartbeat(loops, events, SERVICE_NAME, stop, heartbeat_seconds, instance, lambda: runner.active)
    reconcile = _reconciler(trigger, runner)
    loops.spawn("reconcile", lambda health: act_when_caught_up(consumer, stop, reconcile, 0.5, health))
    metrics_server = metrics.serve(metrics_port, metrics_host)
    try:
        await consumer.run(stop)
    finally:
        metrics.stop(metrics_server)
        await loops.close()
        await runner.shutdown()
        await events.stop()
        await engine.dispose()
    loops.raise_if_failed()


def _reconciler(trigger: Trigger, runner: JobRunner) -> Callable[[set[int]], Awaitable[None]]:
    """Run (or recover) the unfinished jobs of caught-up partitions, and pass on cancellations.

    Waiting for catch-up matters: while replaying history, a job looks unfinished until
    its final event is read.
    """

    async def reconcile(partitions: set[int]) -> None:
        runner.cancel(trigger.cancelled)
        trigger.cancelled.clear()
        await runner.reconcile(partitions)

    return reconcile
