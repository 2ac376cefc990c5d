"""The local broker from Maven jars is a real Kafka, and it leaves no JVM behind.

Each test starts its own LocalKafka on free ports in ``tmp_path`` (not the session
broker), sharing the machine's jar cache.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from kaizen_cli.kafka_local import LocalKafka, LocalKafkaError
from tests.support.broker import JAR_CACHE, free_ports, local_kafka

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    """A not-yet-started broker in ``tmp_path``; stopped after the test whatever happened."""
    broker = local_kafka(tmp_path / "home")
    yield broker
    broker.stop()


def test_serves_an_idempotent_producer_and_a_consumer_then_stops_its_jvm(kafka: LocalKafka) -> None:
    bootstrap = kafka.start(fresh=True)
    topic = asyncio.run(_new_topic(bootstrap))

    asyncio.run(_produce(bootstrap, topic, [b"hello"]))

    assert asyncio.run(_consume(bootstrap, topic, count=1)) == [b"hello"]
    status = kafka.status()
    pid = status["pid"]
    assert status["running"] and pid is not None
    assert status["bootstrap"] == bootstrap == f"127.0.0.1:{kafka.port}"
    assert Path(status["data_dir"]).is_dir() and Path(status["log_path"]).stat().st_size > 0

    assert kafka.stop() is True

    assert not Path(f"/proc/{pid}").exists(), "the JVM (or its zombie) outlived stop()"
    assert kafka.status()["running"] is False and not kafka.pid_file.exists()


def test_second_start_on_the_same_home_returns_the_running_broker(kafka: LocalKafka, tmp_path: Path) -> None:
    bootstrap = kafka.start(fresh=True)
    pid = kafka.status()["pid"]
    # Other ports requested on purpose: the running broker's address wins, no second JVM starts.
    other_port, other_controller_port = free_ports(2)
    again = LocalKafka(tmp_path / "home", other_port, other_controller_port, lib_dir=JAR_CACHE)

    assert again.start() == bootstrap

    assert again.status()["pid"] == pid
    assert _broker_jvms(kafka) == [pid]


def test_restart_keeps_the_records_written_before(kafka: LocalKafka) -> None:
    bootstrap = kafka.start(fresh=True)
    topic = asyncio.run(_new_topic(bootstrap))
    asyncio.run(_produce(bootstrap, topic, [b"one", b"two", b"three"]))
    kafka.stop()

    assert kafka.start() == bootstrap

    assert asyncio.run(_consume(bootstrap, topic, count=3)) == [b"one", b"two", b"three"]


def test_a_committed_transaction_is_visible_to_read_committed_consumers(kafka: LocalKafka) -> None:
    bootstrap = kafka.start(fresh=True)
    topic = asyncio.run(_new_topic(bootstrap))

    asyncio.run(_produce_in_transaction(bootstrap, topic, [b"a", b"b"]))

    assert asyncio.run(_consume(bootstrap, topic, count=2, read_committed=True)) == [b"a", b"b"]


def test_a_broker_whose_pid_file_was_lost_is_still_found_and_stopped(kafka: LocalKafka) -> None:
    kafka.start(fresh=True)
    pid = kafka.status()["pid"]
    kafka.pid_file.unlink()

    assert kafka.status()["pid"] == pid
    assert kafka.stop() is True
    assert not Path(f"/proc/{pid}").exists()


def test_start_names_a_port_taken_by_another_program(kafka: LocalKafka) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", kafka.port))
        squatter.listen()

        with pytest.raises(LocalKafkaError, match=rf"127\.0\.0\.1:{kafka.port} is already in use"):
            kafka.start()

    assert kafka.status()["running"] is False


def test_a_pid_file_naming_another_program_is_treated_as_stale(kafka: LocalKafka) -> None:
    kafka.pid_file.parent.mkdir(parents=True)
    kafka.pid_file.write_text(f"{os.getpid()}\n")  # alive, but pytest is not a Kafka broker

    assert kafka.status()["running"] is False
    assert not kafka.pid_file.exists()


# -- helpers ------------------------------------------------------------------------------


async def _new_topic(bootstrap: str) -> str:
    name = f"test-local-kafka-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _produce_in_transaction(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"test-{uuid.uuid4().hex}")
    await producer.start()
    try:
        async with producer.transaction():
            for value in values:
                await producer.send(topic, value)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, *, count: int, read_committed: bool = False) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(values) < count:
                batches = await consumer.getmany(timeout_ms=500)
                values.extend(record.value for records in batches.values() for record in records)
    finally:
        await consumer.stop()
    return values


def _broker_jvms(kafka: LocalKafka) -> list[int]:
    """Pids of every process running a broker with this home's config."""
    config = str(kafka.server_properties).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if config in (proc / "cmdline").read_bytes().split(b"\0"):
                    pids.append(int(proc.name))
            except OSError:
                continue  # exited while we looked
    return pids
