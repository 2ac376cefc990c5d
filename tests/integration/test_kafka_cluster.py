"""`kaizen kafka start --brokers 3` keeps every acknowledged write when a broker dies mid-load.

Three local nodes (replication factor 3, ``min.insync.replicas=2``) on free ports in a
temporary home. Writers append through our producer (``EventLog``: idempotent,
``acks=all``) while the broker leading most partitions is SIGKILLed; writing goes on with
two nodes. Then the whole topic is read back: every acknowledged event is there, once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from kaizen_cli.kafka_cluster import LocalKafkaCluster
from shared.events import codec
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventLog, LogUnavailable
from shared.kafka.security import PLAINTEXT, client_options
from tests.support import events as ev
from tests.support.broker import JAR_CACHE, free_ports

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

WRITERS = 8
PARTITIONS = 6
BEFORE_KILL_SECONDS = 5.0
AFTER_KILL_SECONDS = 15.0
log = logging.getLogger(__name__)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalKafkaCluster]:
    ports = free_ports(6)
    nodes = LocalKafkaCluster(
        tmp_path / "home", list(zip(ports[0::2], ports[1::2], strict=True)), "384m", lib_dir=JAR_CACHE
    )
    try:
        yield nodes
    finally:
        nodes.stop()


@dataclass
class Load:
    acknowledged: list[str] = field(default_factory=list)
    acknowledged_after_kill: int = 0
    refused: int = 0
    killed: bool = False
    slowest_append: float = 0.0


def test_no_acknowledged_write_is_lost_or_doubled_when_a_broker_is_killed(cluster: LocalKafkaCluster) -> None:
    started = time.monotonic()
    bootstrap = cluster.start(180, fresh=True)
    ready_after = time.monotonic() - started
    topics = Topics(f"cluster-{uuid.uuid4().hex[:8]}")

    load, victim = asyncio.run(_write_through_a_kill(cluster, bootstrap, topics))
    written = asyncio.run(_read_all(bootstrap, topics.tasks, PARTITIONS))

    counts = Counter(written)
    assert load.killed and not cluster.nodes[victim].status()["running"]
    assert load.acknowledged_after_kill > 0, "writes stopped with two of three nodes up"
    assert set(load.acknowledged) <= set(counts), "an acknowledged event is missing"
    assert [event_id for event_id, n in counts.items() if n > 1] == [], "an event was written twice"
    log.warning(
        "cluster ready in %.1fs; %d acknowledged (%d after killing node %d), %d refused, %d in the log; "
        "slowest acknowledged append %.1fs",
        ready_after,
        len(load.acknowledged),
        load.acknowledged_after_kill,
        victim + 1,
        load.refused,
        len(written),
        load.slowest_append,
    )


async def _write_through_a_kill(
    cluster: LocalKafkaCluster, bootstrap: str, topics: Topics
) -> tuple[Load, int]:
    await ensure_topics(bootstrap, topics, partitions=PARTITIONS, replication_factor=3, security=PLAINTEXT)
    leaders = await _check_replication(bootstrap, topics.tasks)
    victim = Counter(leaders).most_common(1)[0][0] - 1
    events = EventLog(bootstrap, topics, client_id="cluster-load", timeout=30, security=PLAINTEXT)
    load, stop = Load(), asyncio.Event()

    async def writer() -> None:
        while not stop.is_set():
            envelope = ev.task_created()
            began = time.monotonic()
            try:
                await events.append(envelope)
            except LogUnavailable:
                load.refused += 1  # not acknowledged: it may or may not be in the log
                continue
            load.slowest_append = max(load.slowest_append, time.monotonic() - began)
            load.acknowledged.append(str(envelope.id))
            load.acknowledged_after_kill += load.killed

    writers = [asyncio.create_task(writer()) for _ in range(WRITERS)]
    try:
        await asyncio.sleep(BEFORE_KILL_SECONDS)
        assert load.acknowledged, "nothing was acknowledged before the kill"
        pid = cluster.nodes[victim].status()["pid"]
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        load.killed = True
        await asyncio.sleep(AFTER_KILL_SECONDS)
    finally:
        stop.set()
        await asyncio.gather(*writers)
        await events.stop()
    await asyncio.to_thread(_reap, cluster, victim, pid)
    return load, victim


async def _check_replication(bootstrap: str, topic: str) -> list[int]:
    """Every partition has three replicas and needs two in sync; returns each partition's leader.

    A topic just created reaches every broker's metadata a moment later: the broker that
    answers may describe it with no partitions yet (seen once on a loaded machine), so it
    is asked again until all of them show, for a bounded time.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(PLAINTEXT))
    await admin.start()
    try:
        async with asyncio.timeout(30):
            while True:
                [described] = await admin.describe_topics([topic])
                if len(described["partitions"]) == PARTITIONS:
                    break
                await asyncio.sleep(0.2)
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    assert {len(p["replicas"]) for p in described["partitions"]} == {3}
    entries = {entry[0]: entry[1] for entry in configs.resources[0][4]}
    assert entries["min.insync.replicas"] == "2"
    return [p["leader"] for p in described["partitions"]]


async def _read_all(bootstrap: str, topic: str, partition_count: int) -> list[str]:
    """The ids of every event in ``topic``, duplicates included, read with the survivors only."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **client_options(PLAINTEXT)
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(partition_count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        ids: list[str] = []
        async with asyncio.timeout(60):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                batches = await consumer.getmany(timeout_ms=1000)
                ids += [str(codec.decode(r.value).id) for records in batches.values() for r in records]
        return ids
    finally:
        await consumer.stop()


def _reap(cluster: LocalKafkaCluster, victim: int, pid: int) -> None:
    """The killed JVM is our child: collect it, or it stays a zombie until pytest exits."""
    node = cluster.nodes[victim]
    deadline = time.monotonic() + 10
    while node.pid_running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    node.collect(pid)
