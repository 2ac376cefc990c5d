"""The one place the projector's real connections are built."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Iterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from services.projector import GROUP, SERVICE_NAME
from services.projector.projection import Projection
from shared import metrics, tracing
from shared.events import codec
from shared.events.topics import Topics
from shared.kafka.consumer import Delivery, EventConsumer
from shared.kafka.producer import EventLog
from shared.kafka.security import client_options
from shared.loops import Loops
from shared.readmodel.db import create_schema, finish_bulk_load, make_engine
from shared.service import instance_name, set_aside_startup_heap, spawn_heartbeat

log = logging.getLogger(__name__)

#: Records per transaction of a rebuild: larger batches cost fewer round trips, and memory
#: stays bounded by this many records and the rows they touch.
REBUILD_BATCH = 5000
#: Records decoded between two yields to the event loop during a rebuild.
DECODE_SLICE = 250
#: Allocations between two collections of the youngest generation during a rebuild (default 700).
REBUILD_GC_THRESHOLD = 50_000


async def run_projector(
    bootstrap: str,
    topics: Topics,
    db_url: str,
    stop: asyncio.Event,
    *,
    heartbeat_seconds: float = 5.0,
    group_id: str | None = None,
    metrics_port: int = 0,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Project the log into ``db_url`` until ``stop`` is set; metrics on ``metrics_port`` (0: off).

    Raises :class:`shared.loops.LoopFailed` when its heartbeat loop gave up.
    """
    group = group_id or topics.group(GROUP)
    engine = make_engine(db_url)
    tracing.instrument_engine(engine)
    await create_schema(engine)
    events = EventLog(bootstrap, topics, client_id=SERVICE_NAME)
    projection = Projection(engine, events, group)
    loops = Loops(stop)
    instance = instance_name(SERVICE_NAME)
    consumer = EventConsumer(
        bootstrap=bootstrap,
        topics=[*topics.replayable, topics.heartbeats],
        group_id=group,
        events=events,
        handler=loops.track("project").around(projection.apply),
        offsets=projection.offsets,
        across_partitions=True,  # one transaction per fetch: the fold is cheaper per record in bulk
    )
    projection.highwater = consumer.consumer.highwater
    spawn_heartbeat(loops, events, SERVICE_NAME, stop, heartbeat_seconds, instance)
    metrics_server = metrics.serve(metrics_port, metrics_host)
    set_aside_startup_heap()  # a rebuild does the same: _collector_for_bulk
    try:
        await consumer.run(stop)
    finally:
        metrics.stop(metrics_server)
        await loops.close()
        await events.stop()
        await projection.close()
        await engine.dispose()
    loops.raise_if_failed()


async def rebuild(bootstrap: str, topics: Topics, db_url: str) -> int:
    """Fold the whole log, from its first record to its end as of now, into ``db_url``.

    Returns the number of records applied. Records that fail to decode are skipped
    here (the live projector dead-lettered them already). ``db_url`` must be a database
    nobody else has open (``kaizen replay`` makes a fresh one): a SQLite file is filled
    without syncing and synced once at the end.
    """
    with _collector_for_bulk():
        return await _rebuild(bootstrap, topics, db_url)


@contextlib.contextmanager
def _collector_for_bulk() -> Iterator[None]:
    """Fewer, cheaper garbage collections while a rebuild runs; the settings as they were after.

    A rebuild allocates millions of short-lived objects (records, envelopes, rows), and
    with the default thresholds the collector kept walking the whole heap — every module,
    model and compiled statement — about a quarter of the rebuild's CPU. What exists when
    the rebuild starts is set aside (``gc.freeze``) and the youngest generation is
    collected less often. Reference counting still frees everything acyclic at once, and
    cycles are still collected, so memory stays bounded by the batches in flight.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(REBUILD_GC_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


async def _rebuild(bootstrap: str, topics: Topics, db_url: str) -> int:
    # Into a file nobody reads yet: loaded in bulk, then synced and put in WAL mode at the end.
    applied = await _fold_log(bootstrap, topics, make_engine(db_url, bulk_load=True))
    await asyncio.to_thread(finish_bulk_load, db_url)
    return applied


async def _fold_log(bootstrap: str, topics: Topics, engine: AsyncEngine) -> int:
    await create_schema(engine)
    projection = Projection(engine, None, "kaizen-replay")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **client_options(),
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics.replayable
            for p in sorted(consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        decoded: asyncio.Queue[list[Delivery] | None] = asyncio.Queue(maxsize=2)
        reader = asyncio.create_task(_read(consumer, remaining, ends, decoded))
        try:
            while (batch := await decoded.get()) is not None:
                await projection.apply(batch)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        return projection.applied
    finally:
        await consumer.stop()
        await projection.close()
        await engine.dispose()


async def _read(
    consumer: AIOKafkaConsumer,
    partitions: set[TopicPartition],
    ends: dict[TopicPartition, int],
    out: asyncio.Queue[list[Delivery] | None],
) -> None:
    """Fetch and decode batches into ``out`` (``None`` after the last), while the one before is written.

    Decoding is the rebuild's largest CPU cost after the fold; done here, it overlaps the
    database's work on the previous batch. ``out`` is bounded, and so is memory.
    """
    try:
        remaining = set(partitions)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=REBUILD_BATCH)
            # One transaction for the whole fetch, every partition's records in it (as the live
            # projector folds across partitions): a batch per partition made several small
            # transactions per fetch, each with its own reads, statements and commit.
            wanted = []
            for tp, records in batches.items():
                wanted += [r for r in records if r.offset < ends[tp]]
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
            deliveries: list[Delivery] = []
            for start in range(0, len(wanted), DECODE_SLICE):
                deliveries += [_decoded(r) for r in wanted[start : start + DECODE_SLICE]]
                await asyncio.sleep(0)  # let the batch being written go on
            if deliveries:
                await out.put(deliveries)
    except Exception:
        # Wake the rebuild waiting on ``out``; it re-raises this error when it awaits the task.
        while not out.empty():
            out.get_nowait()
        out.put_nowait(None)
        raise
    await out.put(None)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    # ``consumer.topics()`` returns fresh metadata without caching it, so the consumer would
    # still know no partitions; tracking the topic makes the client fetch and keep its metadata.
    await consumer._client.add_topic(topic)
    return consumer.partitions_for_topic(topic) or set()


def _decoded(record: object) -> Delivery:
    r = record  # ConsumerRecord
    try:
        envelope = codec.decode(r.value)  # type: ignore[attr-defined]
    except codec.PoisonRecord:
        envelope = None
    return Delivery(r.topic, r.partition, r.offset, envelope, r)  # type: ignore[attr-defined]
